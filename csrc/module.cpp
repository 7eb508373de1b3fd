// pyxai._C: importing it loads the op library (TORCH_LIBRARY registrations run at load time).
// The Python module itself only reports how the extension was built.
#include <pybind11/pybind11.h>
#include <torch/version.h>

#include <string>

#ifdef PYXAI_WITH_CUDA
namespace pyxai {
std::string cuda_build_info();  // defined in common/build_info.cu
}
#endif

namespace py = pybind11;

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "pyxai native kernels (ops are registered as torch.ops.pyxai.*)";
  m.def("build_info", [] {
    py::dict d;
#ifdef PYXAI_WITH_CUDA
    d["cuda"] = true;
    d["cuda_info"] = pyxai::cuda_build_info();
#else
    d["cuda"] = false;
    d["cuda_info"] = "";
#endif
#ifdef _OPENMP
    d["openmp"] = true;
#else
    d["openmp"] = false;
#endif
    d["torch_version"] = std::string(TORCH_VERSION);
#if defined(__clang__)
    d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    d["compiler"] = std::string("gcc ") + __VERSION__;
#else
    d["compiler"] = std::string("unknown");
#endif
    return d;
  });
}
