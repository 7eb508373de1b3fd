// smooth_masks family, ATen glue for the CUDA kernels in cuda.cu.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "common/checks.h"
#include "smooth_masks/smooth_masks.h"

namespace pyxai {
namespace smooth_masks {
namespace {

void* current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

std::tuple<at::Tensor, at::Tensor> smooth_masks_cuda_op(const at::Tensor& params_,
                                                         const at::Tensor& weight_, int64_t pad,
                                                         int64_t step) {
  const SmoothShape s = check_smooth(params_, weight_, pad, step);
  c10::cuda::CUDAGuard guard(params_.device());
  auto params = params_.contiguous();
  auto weight = weight_.contiguous();
  auto out = at::empty({s.n, s.h, s.w}, params.options());
  auto stats = at::empty({s.n, 2, s.h, s.w}, params.options());
  AT_DISPATCH_FLOATING_TYPES(params.scalar_type(), "smooth_masks_cuda", [&] {
    smooth_masks_cuda<scalar_t>(s, params.data_ptr<scalar_t>(), weight.data_ptr<scalar_t>(),
                                out.data_ptr<scalar_t>(), stats.data_ptr<scalar_t>(),
                                current_stream());
  });
  return {out, stats};
}

at::Tensor smooth_masks_backward_cuda_op(const at::Tensor& grad_, const at::Tensor& params_,
                                         const at::Tensor& weight_, const at::Tensor& fwd_,
                                         const at::Tensor& stats_, int64_t pad, int64_t step) {
  const SmoothShape s = check_smooth_backward(grad_, params_, weight_, fwd_, stats_, pad, step);
  c10::cuda::CUDAGuard guard(params_.device());
  auto grad = grad_.contiguous();
  auto params = params_.contiguous();
  auto weight = weight_.contiguous();
  auto fwd = fwd_.contiguous();
  auto stats = stats_.contiguous();
  auto out = at::empty({s.n, s.gh, s.gw}, params.options());
  AT_DISPATCH_FLOATING_TYPES(params.scalar_type(), "smooth_masks_backward_cuda", [&] {
    smooth_masks_backward_cuda<scalar_t>(s, grad.data_ptr<scalar_t>(), params.data_ptr<scalar_t>(),
                                         weight.data_ptr<scalar_t>(), fwd.data_ptr<scalar_t>(),
                                         stats.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                         current_stream());
  });
  return out;
}

}  // namespace
}  // namespace smooth_masks
}  // namespace pyxai

TORCH_LIBRARY_IMPL(pyxai, CUDA, m) {
  m.impl("smooth_masks", &pyxai::smooth_masks::smooth_masks_cuda_op);
  m.impl("smooth_masks_backward", &pyxai::smooth_masks::smooth_masks_backward_cuda_op);
}
