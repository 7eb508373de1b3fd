// metrics family, ATen glue for the CUDA kernels in cuda.cu.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "common/checks.h"
#include "metrics/metrics.h"

namespace pyxai {
namespace metrics {
namespace {

at::Tensor reveal_by_rank_cuda_op(const at::Tensor& start_, const at::Tensor& finish_,
                                  const at::Tensor& ranks_, int64_t first, int64_t count,
                                  int64_t step_px) {
  const RevealShape s = check_reveal(start_, finish_, ranks_, first, count, step_px);
  c10::cuda::CUDAGuard guard(start_.device());
  auto start = start_.contiguous();
  auto finish = finish_.contiguous();
  auto ranks = ranks_.contiguous();
  auto out = at::empty({s.count, s.c, s.p}, start.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(start.scalar_type(), "reveal_by_rank_cuda", [&] {
    reveal_by_rank_cuda<scalar_t>(s, start.data_ptr<scalar_t>(), finish.data_ptr<scalar_t>(),
                                  ranks.data_ptr<int64_t>(), out.data_ptr<scalar_t>(),
                                  c10::cuda::getCurrentCUDAStream().stream());
  });
  return out;
}

}  // namespace
}  // namespace metrics
}  // namespace pyxai

TORCH_LIBRARY_IMPL(pyxai, CUDA, m) {
  m.impl("reveal_by_rank", &pyxai::metrics::reveal_by_rank_cuda_op);
}
