// lrp family, ATen glue for CUDA: the shared op front ends (host.cpp) with the CUDA elementwise
// kernels of cuda.cu.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "common/checks.h"
#include "lrp/lrp.h"

namespace pyxai {
namespace lrp {
namespace {

void* current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

void split_sign_gpu(const EwShape& e, const at::Tensor& x, at::Tensor& xs) {
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lrp_split_sign_cuda", [&] {
    split_sign_cuda<scalar_t>(e, x.data_ptr<scalar_t>(), xs.data_ptr<scalar_t>(), current_stream());
  });
}

void stab_div_gpu(const EwShape& e, const at::Tensor& grad, const at::Tensor& z,
                  const at::Tensor& z0, at::Tensor& s) {
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "lrp_stab_div_cuda", [&] {
    stab_div_cuda<scalar_t>(e, grad.data_ptr<scalar_t>(), z.data_ptr<scalar_t>(),
                            e.has_mask ? z0.data_ptr<scalar_t>() : nullptr,
                            s.data_ptr<scalar_t>(), current_stream());
  });
}

void combine_gpu(const EwShape& e, const at::Tensor& xs, const at::Tensor& g, at::Tensor& r) {
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "lrp_combine_cuda", [&] {
    combine_cuda<scalar_t>(e, xs.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(),
                           r.data_ptr<scalar_t>(), current_stream());
  });
}

const Kernels kCudaKernels{&split_sign_gpu, &stab_div_gpu, &combine_gpu};

at::Tensor lrp_split_sign_cuda(const at::Tensor& x, int64_t groups) {
  c10::cuda::CUDAGuard guard(x.device());
  return split_sign(x, groups, kCudaKernels);
}

at::Tensor lrp_stab_div_cuda(const at::Tensor& grad, const at::Tensor& z,
                             const c10::optional<at::Tensor>& z0, int64_t groups,
                             c10::ArrayRef<double> coef, c10::IntArrayRef mask, double eps) {
  c10::cuda::CUDAGuard guard(grad.device());
  return stab_div(grad, z, z0, groups, coef, mask, eps, kCudaKernels);
}

at::Tensor lrp_combine_cuda(const at::Tensor& xs, const at::Tensor& g, int64_t groups,
                            c10::ArrayRef<double> coef) {
  c10::cuda::CUDAGuard guard(xs.device());
  return combine(xs, g, groups, coef, kCudaKernels);
}

}  // namespace
}  // namespace lrp
}  // namespace pyxai

TORCH_LIBRARY_IMPL(pyxai, CUDA, m) {
  m.impl("lrp_split_sign", &pyxai::lrp::lrp_split_sign_cuda);
  m.impl("lrp_stab_div", &pyxai::lrp::lrp_stab_div_cuda);
  m.impl("lrp_combine", &pyxai::lrp::lrp_combine_cuda);
}
