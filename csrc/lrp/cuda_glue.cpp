// lrp family, ATen glue for CUDA: the shared rule logic (rules.cpp) with the CUDA elementwise
// kernels of cuda.cu; convolutions and matmuls go through ATen (cuDNN / cuBLAS).
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
                            e.gamma_mask ? z0.data_ptr<scalar_t>() : nullptr,
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

at::Tensor lrp_conv_cuda(const at::Tensor& x, const at::Tensor& grad, const at::Tensor& weight,
                         const c10::optional<at::Tensor>& bias,
                         const c10::optional<at::Tensor>& out, c10::IntArrayRef stride,
                         c10::IntArrayRef padding, c10::IntArrayRef dilation, int64_t groups,
                         int64_t rule, c10::ArrayRef<double> params,
                         const c10::optional<at::Tensor>& low,
                         const c10::optional<at::Tensor>& high) {
  TORCH_CHECK(x.dim() >= 3 && x.dim() <= 5, "pyxai: lrp_conv: x must be [N, C, *S] with 1-3 spatial dims");
  c10::cuda::CUDAGuard guard(x.device());
  return lrp_layer(x, grad, weight, bias, out, x.dim() - 2, stride, padding, dilation, groups, rule,
                   params, low, high, kCudaKernels);
}

at::Tensor lrp_linear_cuda(const at::Tensor& x, const at::Tensor& grad, const at::Tensor& weight,
                           const c10::optional<at::Tensor>& bias,
                           const c10::optional<at::Tensor>& out, int64_t rule,
                           c10::ArrayRef<double> params, const c10::optional<at::Tensor>& low,
                           const c10::optional<at::Tensor>& high) {
  c10::cuda::CUDAGuard guard(x.device());
  return lrp_layer(x, grad, weight, bias, out, 0, {}, {}, {}, 1, rule, params, low, high,
                   kCudaKernels);
}

}  // namespace
}  // namespace lrp
}  // namespace pyxai

TORCH_LIBRARY_IMPL(pyxai, CUDA, m) {
  m.impl("lrp_conv", &pyxai::lrp::lrp_conv_cuda);
  m.impl("lrp_linear", &pyxai::lrp::lrp_linear_cuda);
}
