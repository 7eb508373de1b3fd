// occlusion family: Captum's sliding-window occlusion, one chunk of windows at a time.
//
// An input row has D = len(shape) dims (everything after the batch dim). Along dim d the window
// of size win[d] starts at k_d * stride[d], k_d in [0, counts[d]) with
// counts[d] = ceil((shape[d] - win[d]) / stride[d]) + 1; the last window is cropped at the border.
// Window index -> (k_0, k_1, ...) is mixed radix with the FIRST dim varying fastest (Captum's
// enumeration). occlusion_perturb writes x with the window set to the baseline; occlusion_accumulate
// turns the output drops of every window into the per-element mean over the windows covering it.
#pragma once

#include <cstdint>

#include "common/common.h"

namespace pyxai {
namespace occlusion {

constexpr int kMaxDims = 8;

struct WindowShape {
  int nd;                    // dims per input row
  int64_t shape[kMaxDims];   // row shape
  int64_t win[kMaxDims];     // window size (<= shape)
  int64_t stride[kMaxDims];  // window stride
  int64_t counts[kMaxDims];  // window positions per dim
  int64_t n_windows;         // prod(counts)
  int64_t numel;             // prod(shape)
};

// Start of window `idx` along every dim (first dim fastest).
PYXAI_HD void window_start(const WindowShape& s, int64_t idx, int64_t* start) {
  for (int d = 0; d < s.nd; ++d) {
    start[d] = (idx % s.counts[d]) * s.stride[d];
    idx /= s.counts[d];
  }
}

// Is row-major element `pos` of a row inside the window starting at `start`?
PYXAI_HD bool inside(const WindowShape& s, const int64_t* start, int64_t pos) {
  for (int d = s.nd - 1; d >= 0; --d) {
    const int64_t c = pos % s.shape[d];
    pos /= s.shape[d];
    if (c < start[d] || c >= start[d] + s.win[d]) return false;
  }
  return true;
}

// Windows covering coordinate c along dim d: k in [lo, hi].
PYXAI_HD void covering(const WindowShape& s, int d, int64_t c, int64_t* lo, int64_t* hi) {
  const int64_t first = c - s.win[d] + 1;  // k * stride >= first
  int64_t l = first <= 0 ? 0 : (first + s.stride[d] - 1) / s.stride[d];
  int64_t h = c / s.stride[d];
  if (h > s.counts[d] - 1) h = s.counts[d] - 1;
  *lo = l;
  *hi = h;
}

// Mean of drops[k * b_total + b] over the windows k covering row-major element `pos`.
template <typename T>
PYXAI_HD T covered_mean(const WindowShape& s, const T* drops, int64_t b_total, int64_t b,
                        int64_t pos) {
  int64_t lo[kMaxDims], hi[kMaxDims], k[kMaxDims], radix[kMaxDims];
  int64_t count = 1, r = 1;
  for (int d = s.nd - 1; d >= 0; --d) {
    const int64_t c = pos % s.shape[d];
    pos /= s.shape[d];
    covering(s, d, c, &lo[d], &hi[d]);
    count *= hi[d] - lo[d] + 1;
  }
  for (int d = 0; d < s.nd; ++d) {
    radix[d] = r;
    r *= s.counts[d];
    k[d] = lo[d];
  }
  double acc = 0.0;
  for (int64_t it = 0; it < count; ++it) {
    int64_t idx = 0;
    for (int d = 0; d < s.nd; ++d) idx += k[d] * radix[d];
    acc += static_cast<double>(drops[idx * b_total + b]);
    for (int d = 0; d < s.nd; ++d) {  // odometer, first dim fastest
      if (++k[d] <= hi[d]) break;
      k[d] = lo[d];
    }
  }
  return static_cast<T>(acc / static_cast<double>(count));
}

#ifdef PYXAI_WITH_CUDA
template <typename T>
void occlusion_perturb_cuda(const WindowShape& s, int64_t b, int64_t first, int64_t count,
                            const T* x, const T* baseline, T* out, void* stream);
template <typename T>
void occlusion_accumulate_cuda(const WindowShape& s, int64_t b, const T* drops, T* out,
                               void* stream);
#endif

}  // namespace occlusion
}  // namespace pyxai

#ifndef __CUDACC__
#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include "common/checks.h"

namespace pyxai {
namespace occlusion {
// Host-side checks shared by cpu.cpp and cuda_glue.cpp. make_shape is defined in cpu.cpp.
WindowShape make_shape(c10::IntArrayRef shape, c10::IntArrayRef window, c10::IntArrayRef strides);

// Arguments of occlusion_perturb: x [B, ...] float, baseline of x's shape, dtype and device,
// windows [first, first + count) in range. Returns the window shape of one row of x.
inline WindowShape check_perturb(const at::Tensor& x, const at::Tensor& baseline,
                                 c10::IntArrayRef window, c10::IntArrayRef strides, int64_t first,
                                 int64_t count) {
  check_float(x, "x");
  TORCH_CHECK(x.dim() >= 2, "pyxai: 'x' must be [B, ...] with at least one dim per row");
  TORCH_CHECK(baseline.sizes() == x.sizes(), "pyxai: 'baseline' must have the shape of 'x'");
  check_same_dtype(x, baseline, "x", "baseline");
  check_same_device(x, baseline, "x", "baseline");
  const WindowShape s = make_shape(x.sizes().slice(1), window, strides);
  TORCH_CHECK(first >= 0 && count >= 0 && first + count <= s.n_windows, "pyxai: windows [", first,
              ", ", first + count, ") out of range [0, ", s.n_windows, ")");
  return s;
}

// Arguments of occlusion_accumulate: drops [n_windows, B] float. Returns the window shape.
inline WindowShape check_accumulate(const at::Tensor& drops, c10::IntArrayRef shape,
                                    c10::IntArrayRef window, c10::IntArrayRef strides) {
  check_float(drops, "drops");
  check_dim(drops, 2, "drops");
  const WindowShape s = make_shape(shape, window, strides);
  TORCH_CHECK(drops.size(0) == s.n_windows, "pyxai: 'drops' must have one row per window (",
              s.n_windows, "), got ", drops.size(0));
  return s;
}
}  // namespace occlusion
}  // namespace pyxai
#endif
