// sobol family, ATen glue for the CUDA kernels in cuda.cu.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>

#include "common/checks.h"
#include "sobol/sobol.h"

namespace pyxai {
namespace sobol {
namespace {

void* current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

at::Tensor sobol_design_cuda_op(const at::Tensor& a_, const at::Tensor& b_, int64_t first,
                                int64_t count) {
  check_design(a_, b_, first, count);
  c10::cuda::CUDAGuard guard(a_.device());
  auto a = a_.contiguous();
  auto b = b_.contiguous();
  auto out = at::empty({count, a.size(1)}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "sobol_design_cuda", [&] {
    sobol_design_cuda<scalar_t>(a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(), a.size(0),
                                a.size(1), first, count, out.data_ptr<scalar_t>(),
                                current_stream());
  });
  return out;
}

at::Tensor sobol_indices_cuda_op(const at::Tensor& ya_, const at::Tensor& yb_,
                                 const at::Tensor& yc_, std::string estimator) {
  check_outputs(ya_, yb_, yc_);
  const int est = parse_estimator(estimator);
  c10::cuda::CUDAGuard guard(ya_.device());
  auto ya = ya_.contiguous();
  auto yb = yb_.contiguous();
  auto yc = yc_.contiguous();
  const int64_t n = ya.size(0), p = ya.size(1), d = yc.size(0);
  auto out = at::empty({2, d, p}, ya.options());
  AT_DISPATCH_FLOATING_TYPES(ya.scalar_type(), "sobol_indices_cuda", [&] {
    sobol_indices_cuda<scalar_t>(ya.data_ptr<scalar_t>(), yb.data_ptr<scalar_t>(),
                                 yc.data_ptr<scalar_t>(), n, d, p, est,
                                 std::numeric_limits<scalar_t>::epsilon(),
                                 out.data_ptr<scalar_t>(), current_stream());
  });
  return out;
}

}  // namespace
}  // namespace sobol
}  // namespace pyxai

TORCH_LIBRARY_IMPL(pyxai, CUDA, m) {
  m.impl("sobol_design", &pyxai::sobol::sobol_design_cuda_op);
  m.impl("sobol_indices", &pyxai::sobol::sobol_indices_cuda_op);
}
