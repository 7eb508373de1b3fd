// masks family: low-resolution grids expanded on the fly into full-size masks.
//
// A mask n is grid[n] (gh x gw) upsampled to a canvas (uh x uw), then cropped at offset
// (oy[n], ox[n]) to the output size (H x W). Output pixel (y, x) reads canvas (y + oy, x + ox).
// The canvas coordinate maps to grid rows/columns (i0, i1) and a weight w with `source_index`;
// the mask value is the separable bilinear blend of the four grid values (nearest: w = 0).
#pragma once

#include <cmath>
#include <cstdint>

#include "common/common.h"

namespace pyxai {
namespace masks {

enum Mode : int {
  kNearest = 0,            // torch 'nearest': floor(dst * (float)(in / out))
  kBilinear = 1,           // half-pixel bilinear, edge clamp (F.interpolate align_corners=False)
  kBilinearReflect = 2,    // half-pixel bilinear, mirror border (skimage order=1 mode='reflect')
  kBilinearAlignCorners = 3  // F.interpolate(bilinear, align_corners=True)
};

struct SourceIndex {
  int64_t i0;
  int64_t i1;
  double w;  // weight of i1; (1 - w) is the weight of i0
};

PYXAI_HD int64_t reflect_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  if (i < 0) return -i;
  if (i >= n) return 2 * (n - 1) - i;
  return i;
}

// Where canvas coordinate `dst` (0 <= dst < out) reads from a grid axis of length `in`.
PYXAI_HD SourceIndex source_index(int64_t dst, int64_t in, int64_t out, int mode) {
  SourceIndex s{0, 0, 0.0};
  if (mode == kNearest) {
    const float scale = static_cast<float>(in) / static_cast<float>(out);
    int64_t i = static_cast<int64_t>(floorf(static_cast<float>(dst) * scale));
    i = i < in - 1 ? i : in - 1;
    s.i0 = s.i1 = i;
    return s;
  }
  if (mode == kBilinearAlignCorners) {
    double src = out > 1 ? static_cast<double>(dst) * static_cast<double>(in - 1) /
                               static_cast<double>(out - 1)
                         : 0.0;
    int64_t i = static_cast<int64_t>(floor(src));
    i = i < in - 1 ? i : in - 1;
    s.i0 = i;
    s.i1 = i + 1 < in ? i + 1 : in - 1;
    s.w = src - static_cast<double>(i);
    return s;
  }
  double src = (static_cast<double>(dst) + 0.5) * static_cast<double>(in) /
                   static_cast<double>(out) - 0.5;
  if (mode == kBilinear) {
    if (src < 0.0) src = 0.0;
    int64_t i = static_cast<int64_t>(floor(src));
    i = i < in - 1 ? i : in - 1;
    s.i0 = i;
    s.i1 = i + 1 < in ? i + 1 : in - 1;
    s.w = src - static_cast<double>(i);
    return s;
  }
  // kBilinearReflect: src lies in [-0.5, in - 0.5), so one mirrored cell on each side suffices.
  int64_t i = static_cast<int64_t>(floor(src));
  s.w = src - static_cast<double>(i);
  s.i0 = reflect_index(i, in);
  s.i1 = reflect_index(i + 1, in);
  return s;
}

// Mask value from a grid (row-major gh x gw) given row and column source indices.
template <typename T>
PYXAI_HD T blend4(const T* g, int64_t gw, const SourceIndex& r, const SourceIndex& c) {
  const T wy = static_cast<T>(r.w), wx = static_cast<T>(c.w);
  const T top = (T(1) - wx) * g[r.i0 * gw + c.i0] + wx * g[r.i0 * gw + c.i1];
  const T bot = (T(1) - wx) * g[r.i1 * gw + c.i0] + wx * g[r.i1 * gw + c.i1];
  return (T(1) - wy) * top + wy * bot;
}

// Adjoint of upsample_masks, in two separable passes that each scatter into memory owned by one
// thread or task (no atomics, fixed summation order, so every device gives the same bits):
//   columns: work[n, y, j] = sum_x  wc(x + ox -> j) * grad[n, y, x]   (x ascending)
//   rows:    out[n, i, j]  = sum_y  wr(y + oy -> i) * work[n, y, j]   (y ascending)
// where wc / wr are the (1 - w, w) weights of the forward's source indices (i0 and i1 may coincide).
// CUDA: one thread per row (n, y), then one per column (n, j); CPU: one task per mask n.
template <typename T>
PYXAI_HD void scatter_weighted(T* dst, int64_t stride, const SourceIndex& s, T v) {
  const T w = static_cast<T>(s.w);
  dst[s.i0 * stride] += (T(1) - w) * v;
  dst[s.i1 * stride] += w * v;
}

// Shapes shared by the kernels.
struct MaskShape {
  int64_t n;       // number of masks
  int64_t gh, gw;  // grid size
  int64_t uh, uw;  // canvas size
  int64_t h, w;    // output (crop) size
  int mode;
};

// CUDA launchers (raw pointers; stream is a cudaStream_t passed as void*). Defined in cuda.cu.
#ifdef PYXAI_WITH_CUDA
template <typename T>
void upsample_masks_cuda(const MaskShape& s, const T* grids, const int64_t* offsets, T* out,
                         void* stream);
template <typename T>
void upsample_blend_cuda(const MaskShape& s, int64_t b, int64_t p, const T* x, const T* baseline,
                         const T* grids, const int64_t* offsets, T* out, void* stream);
template <typename T>
void weighted_mask_sum_cuda(const MaskShape& s, int64_t k, const T* grids, const int64_t* offsets,
                            const T* weights, T* out, void* stream);
// Adjoint of upsample_masks: grad [N, H, W] -> out [N, gh, gw]; work is scratch [N, H, gw].
template <typename T>
void upsample_masks_backward_cuda(const MaskShape& s, const T* grad, const int64_t* offsets,
                                  T* work, T* out, void* stream);
#endif

}  // namespace masks
}  // namespace pyxai

#ifndef __CUDACC__
#include <ATen/core/Tensor.h>
#include <string>

namespace pyxai {
namespace masks {
// Host-side glue helpers shared by cpu.cpp and cuda_glue.cpp (defined in cpu.cpp).
int parse_mode(const std::string& mode);
MaskShape check_grids(const at::Tensor& grids, const at::Tensor& offsets, c10::IntArrayRef size,
                      c10::IntArrayRef canvas, const std::string& mode);
// check_grids plus x [B, P, H, W] float and baseline of x's shape, dtype and device (upsample_blend).
MaskShape check_blend(const at::Tensor& x, const at::Tensor& grids, const at::Tensor& offsets,
                      const at::Tensor& baseline, c10::IntArrayRef canvas, const std::string& mode);
// upsample_masks_backward: grad [N, H, W] float, offsets [N, 2] int64, grid (gh, gw) positive.
MaskShape check_masks_backward(const at::Tensor& grad, const at::Tensor& offsets,
                               c10::IntArrayRef grid, c10::IntArrayRef canvas,
                               const std::string& mode);
// check_grids plus weights [N, K] of the grids' dtype and device (weighted_mask_sum).
MaskShape check_weighted_sum(const at::Tensor& grids, const at::Tensor& offsets,
                             const at::Tensor& weights, c10::IntArrayRef size,
                             c10::IntArrayRef canvas, const std::string& mode);
}  // namespace masks
}  // namespace pyxai
#endif
