// occlusion family, ATen glue for the CUDA kernels in cuda.cu.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <vector>

#include "occlusion/occlusion.h"

namespace pyxai {
namespace occlusion {
namespace {

void* current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

at::Tensor occlusion_perturb_cuda_op(const at::Tensor& x_, const at::Tensor& baseline_,
                                     c10::IntArrayRef window, c10::IntArrayRef strides,
                                     int64_t first, int64_t count) {
  const WindowShape s = check_perturb(x_, baseline_, window, strides, first, count);
  c10::cuda::CUDAGuard guard(x_.device());
  auto x = x_.contiguous();
  auto base = baseline_.contiguous();
  const int64_t b = x.size(0);
  std::vector<int64_t> out_sizes(x.sizes().begin(), x.sizes().end());
  out_sizes[0] = count * b;
  auto out = at::empty(out_sizes, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "occlusion_perturb_cuda", [&] {
    occlusion_perturb_cuda<scalar_t>(s, b, first, count, x.data_ptr<scalar_t>(),
                                     base.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                     current_stream());
  });
  return out;
}

at::Tensor occlusion_accumulate_cuda_op(const at::Tensor& drops_, c10::IntArrayRef shape,
                                        c10::IntArrayRef window, c10::IntArrayRef strides) {
  const WindowShape s = check_accumulate(drops_, shape, window, strides);
  c10::cuda::CUDAGuard guard(drops_.device());
  auto drops = drops_.contiguous();
  const int64_t b = drops.size(1);
  std::vector<int64_t> out_sizes{b};
  out_sizes.insert(out_sizes.end(), shape.begin(), shape.end());
  auto out = at::empty(out_sizes, drops.options());
  AT_DISPATCH_FLOATING_TYPES(drops.scalar_type(), "occlusion_accumulate_cuda", [&] {
    occlusion_accumulate_cuda<scalar_t>(s, b, drops.data_ptr<scalar_t>(),
                                        out.data_ptr<scalar_t>(), current_stream());
  });
  return out;
}

}  // namespace
}  // namespace occlusion
}  // namespace pyxai

TORCH_LIBRARY_IMPL(pyxai, CUDA, m) {
  m.impl("occlusion_perturb", &pyxai::occlusion::occlusion_perturb_cuda_op);
  m.impl("occlusion_accumulate", &pyxai::occlusion::occlusion_accumulate_cuda_op);
}
