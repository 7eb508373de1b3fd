// masks family, ATen glue for the CUDA kernels in cuda.cu.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "masks/masks.h"

namespace pyxai {
namespace masks {
namespace {

void* current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

at::Tensor upsample_masks_cuda_op(const at::Tensor& grids_, const at::Tensor& offsets_,
                                  c10::IntArrayRef size, c10::IntArrayRef canvas,
                                  std::string mode) {
  const MaskShape s = check_grids(grids_, offsets_, size, canvas, mode);
  c10::cuda::CUDAGuard guard(grids_.device());
  auto grids = grids_.contiguous();
  auto offsets = offsets_.contiguous();
  auto out = at::empty({s.n, s.h, s.w}, grids.options());
  AT_DISPATCH_FLOATING_TYPES(grids.scalar_type(), "upsample_masks_cuda", [&] {
    upsample_masks_cuda<scalar_t>(s, grids.data_ptr<scalar_t>(), offsets.data_ptr<int64_t>(),
                                  out.data_ptr<scalar_t>(), current_stream());
  });
  return out;
}

at::Tensor upsample_blend_cuda_op(const at::Tensor& x_, const at::Tensor& grids_,
                                  const at::Tensor& offsets_, const at::Tensor& baseline_,
                                  c10::IntArrayRef canvas, std::string mode) {
  const MaskShape s = check_blend(x_, grids_, offsets_, baseline_, canvas, mode);
  c10::cuda::CUDAGuard guard(x_.device());
  auto x = x_.contiguous();
  auto base = baseline_.contiguous();
  auto grids = grids_.contiguous();
  auto offsets = offsets_.contiguous();
  const int64_t b = x.size(0), p = x.size(1);
  auto out = at::empty({s.n * b, p, s.h, s.w}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "upsample_blend_cuda", [&] {
    upsample_blend_cuda<scalar_t>(s, b, p, x.data_ptr<scalar_t>(), base.data_ptr<scalar_t>(),
                                  grids.data_ptr<scalar_t>(), offsets.data_ptr<int64_t>(),
                                  out.data_ptr<scalar_t>(), current_stream());
  });
  return out;
}

at::Tensor weighted_mask_sum_cuda_op(const at::Tensor& grids_, const at::Tensor& offsets_,
                                     const at::Tensor& weights_, c10::IntArrayRef size,
                                     c10::IntArrayRef canvas, std::string mode) {
  const MaskShape s = check_weighted_sum(grids_, offsets_, weights_, size, canvas, mode);
  c10::cuda::CUDAGuard guard(grids_.device());
  auto grids = grids_.contiguous();
  auto offsets = offsets_.contiguous();
  auto weights = weights_.contiguous();
  const int64_t k = weights.size(1);
  auto out = at::empty({k, s.h, s.w}, grids.options());
  AT_DISPATCH_FLOATING_TYPES(grids.scalar_type(), "weighted_mask_sum_cuda", [&] {
    weighted_mask_sum_cuda<scalar_t>(s, k, grids.data_ptr<scalar_t>(),
                                     offsets.data_ptr<int64_t>(), weights.data_ptr<scalar_t>(),
                                     out.data_ptr<scalar_t>(), current_stream());
  });
  return out;
}

at::Tensor upsample_masks_backward_cuda_op(const at::Tensor& grad_, const at::Tensor& offsets_,
                                           c10::IntArrayRef grid, c10::IntArrayRef canvas,
                                           std::string mode) {
  const MaskShape s = check_masks_backward(grad_, offsets_, grid, canvas, mode);
  c10::cuda::CUDAGuard guard(grad_.device());
  auto grad = grad_.contiguous();
  auto offsets = offsets_.contiguous();
  auto work = at::empty({s.n, s.h, s.gw}, grad.options());
  auto out = at::empty({s.n, s.gh, s.gw}, grad.options());
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "upsample_masks_backward_cuda", [&] {
    upsample_masks_backward_cuda<scalar_t>(s, grad.data_ptr<scalar_t>(),
                                           offsets.data_ptr<int64_t>(), work.data_ptr<scalar_t>(),
                                           out.data_ptr<scalar_t>(), current_stream());
  });
  return out;
}

}  // namespace
}  // namespace masks
}  // namespace pyxai

TORCH_LIBRARY_IMPL(pyxai, CUDA, m) {
  m.impl("upsample_masks", &pyxai::masks::upsample_masks_cuda_op);
  m.impl("upsample_blend", &pyxai::masks::upsample_blend_cuda_op);
  m.impl("weighted_mask_sum", &pyxai::masks::weighted_mask_sum_cuda_op);
  m.impl("upsample_masks_backward", &pyxai::masks::upsample_masks_backward_cuda_op);
}
