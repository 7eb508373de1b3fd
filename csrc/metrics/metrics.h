// metrics family: deletion/insertion canvases revealed pixel by pixel in the order of a ranking.
//
// reveal_by_rank: start, finish [B, C, P] (P = pixels per channel, e.g. H*W), ranks [B, P] int64
// (position of each pixel in the importance order, 0 = most important). Output row r in
// [0, count) is item i = first + r, i.e. step s = i / B of image b = i % B:
//   out[r, c, p] = ranks[b, p] < s * step_px ? finish[b, c, p] : start[b, c, p]
// Rows are step-major (row s * B + b), the order the perturbation runner consumes them in.
#pragma once

#include <cstdint>

#include "common/common.h"

namespace pyxai {
namespace metrics {

struct RevealShape {
  int64_t b;        // images
  int64_t c;        // channels (any leading non-pixel dims folded in)
  int64_t p;        // pixels per channel
  int64_t first;    // first item (step * B + image)
  int64_t count;    // number of output rows
  int64_t step_px;  // pixels revealed per step
};

// Value of output row r, channel c, pixel p (shared by the CPU and CUDA kernels).
template <typename T>
PYXAI_HD T reveal_value(const RevealShape& s, const T* start, const T* finish,
                        const int64_t* ranks, int64_t r, int64_t c, int64_t p) {
  const int64_t item = s.first + r;
  const int64_t step = item / s.b, b = item % s.b;
  const int64_t src = (b * s.c + c) * s.p + p;
  return ranks[b * s.p + p] < step * s.step_px ? finish[src] : start[src];
}

#ifdef PYXAI_WITH_CUDA
// CUDA launcher (raw pointers; stream is a cudaStream_t passed as void*). Defined in cuda.cu.
template <typename T>
void reveal_by_rank_cuda(const RevealShape& s, const T* start, const T* finish,
                         const int64_t* ranks, T* out, void* stream);
#endif

}  // namespace metrics
}  // namespace pyxai

#ifndef __CUDACC__
#include <ATen/core/Tensor.h>

namespace pyxai {
namespace metrics {
// Host-side argument checks shared by cpu.cpp and cuda_glue.cpp (defined in cpu.cpp).
RevealShape check_reveal(const at::Tensor& start, const at::Tensor& finish,
                         const at::Tensor& ranks, int64_t first, int64_t count, int64_t step_px);
}  // namespace metrics
}  // namespace pyxai
#endif
