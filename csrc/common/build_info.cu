// CUDA build facts reported by pyxai._C.build_info(): runtime version and compiled architectures.
#include <cuda_runtime.h>

#include <string>

#define PYXAI_STR2(...) #__VA_ARGS__
#define PYXAI_STR(...) PYXAI_STR2(__VA_ARGS__)

namespace pyxai {

std::string cuda_build_info() {
  std::string s = "CUDA runtime " + std::to_string(CUDART_VERSION / 1000) + "." +
                  std::to_string((CUDART_VERSION % 1000) / 10);
#ifdef __CUDA_ARCH_LIST__
  s += "; archs " PYXAI_STR(__CUDA_ARCH_LIST__);
#endif
  return s;
}

}  // namespace pyxai
