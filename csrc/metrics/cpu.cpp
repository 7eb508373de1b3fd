// metrics family, CPU kernels: reveal_by_rank.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "common/checks.h"
#include "metrics/metrics.h"

namespace pyxai {
namespace metrics {

RevealShape check_reveal(const at::Tensor& start, const at::Tensor& finish,
                         const at::Tensor& ranks, int64_t first, int64_t count, int64_t step_px) {
  check_float(start, "start");
  check_dim(start, 3, "start");
  TORCH_CHECK(finish.sizes() == start.sizes(), "pyxai: 'finish' must have the shape of 'start' ",
              start.sizes(), ", got ", finish.sizes());
  check_same_dtype(start, finish, "start", "finish");
  check_same_device(start, finish, "start", "finish");
  check_dim(ranks, 2, "ranks");
  TORCH_CHECK(ranks.scalar_type() == at::kLong, "pyxai: 'ranks' must be int64");
  TORCH_CHECK(ranks.size(0) == start.size(0) && ranks.size(1) == start.size(2),
              "pyxai: 'ranks' must have shape [B, P] = [", start.size(0), ", ", start.size(2),
              "], got ", ranks.sizes());
  check_same_device(start, ranks, "start", "ranks");
  TORCH_CHECK(start.size(0) > 0, "pyxai: 'start' is an empty batch");
  TORCH_CHECK(first >= 0 && count >= 0, "pyxai: 'first' and 'count' must be >= 0");
  TORCH_CHECK(step_px >= 1, "pyxai: 'step_px' must be >= 1, got ", step_px);
  return RevealShape{start.size(0), start.size(1), start.size(2), first, count, step_px};
}

at::Tensor reveal_by_rank_cpu(const at::Tensor& start_, const at::Tensor& finish_,
                              const at::Tensor& ranks_, int64_t first, int64_t count,
                              int64_t step_px) {
  const RevealShape s = check_reveal(start_, finish_, ranks_, first, count, step_px);
  auto start = start_.contiguous();
  auto finish = finish_.contiguous();
  auto ranks = ranks_.contiguous();
  auto out = at::empty({s.count, s.c, s.p}, start.options());
  if (out.numel() == 0) return out;
  const int64_t* rk = ranks.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(start.scalar_type(), "reveal_by_rank_cpu", [&] {
    const scalar_t* st = start.data_ptr<scalar_t>();
    const scalar_t* fi = finish.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    // One task per (row, channel) plane: a branch-free select over contiguous pixels.
    at::parallel_for(0, s.count * s.c, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t r = i / s.c, c = i % s.c;
        const int64_t item = s.first + r;
        const int64_t b = item % s.b;
        const int64_t thr = (item / s.b) * s.step_px;
        const int64_t* rb = rk + b * s.p;
        const scalar_t* sp = st + (b * s.c + c) * s.p;
        const scalar_t* fp = fi + (b * s.c + c) * s.p;
        scalar_t* op = o + i * s.p;
        for (int64_t p = 0; p < s.p; ++p) op[p] = rb[p] < thr ? fp[p] : sp[p];
      }
    });
  });
  return out;
}

}  // namespace metrics
}  // namespace pyxai

TORCH_LIBRARY_IMPL(pyxai, CPU, m) { m.impl("reveal_by_rank", &pyxai::metrics::reveal_by_rank_cpu); }
