// smooth_masks family: TorchRay's smooth mask generator (extremal perturbation, STEP), fused.
//
// params [N, gh, gw] are zero-padded by `pad`, unfolded into t x t taps (K = t * t, tap k = ky * t + kx),
// each tap plane (mid = g + 2 pad - t + 1 cells) is nearest-upsampled by `step` to the canvas
// (up = step * mid) and the output [N, H, W] (H <= up_h, W <= up_w: the canvas cropped at 0) is
// the softmax pooling of the weighted taps:
//   a_k = weight[k, y, x] * params[n, r(y) + ky - pad, c(x) + kx - pad]   (0 outside the grid)
//   out = sum_k a_k s_k,   s_k = exp(20 a_k - max_j 20 a_j) / sum_j exp(20 a_j - max_j 20 a_j)
// with r(y) = floor(y * (float)(mid_h / up_h)) (torch's nearest), c(x) likewise. The backward
//   d out / d a_k = s_k (1 + 20 (a_k - out))
// is summed into the parameter cell each tap reads. The kernels recompute the K taps of a pixel
// instead of storing them: memory O(N * H * W), not O(N * K * H * W). The forward also returns
// per-pixel stats [N, 2, H, W] (max_j 20 a_j, sum_j exp(20 a_j - max)), so that the backward
// recomputes each tap's exponential once, from them, instead of the whole forward.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/common.h"
#include "masks/masks.h"

namespace pyxai {
namespace smooth_masks {

constexpr float kColdness = 20.0f;  // TorchRay's softmax coldness

struct SmoothShape {
  int64_t n;         // number of masks
  int64_t gh, gw;    // parameter grid
  int64_t taps;      // t (K = t * t)
  int64_t pad;       // zero padding of the grid before unfolding
  int64_t step;      // nearest-upsampling factor
  int64_t mh, mw;    // unfolded (mid) grid: g + 2 pad - t + 1
  int64_t uh, uw;    // canvas: step * mid
  int64_t h, w;      // output
};

// Mid-grid cell read by canvas coordinate `dst` (torch's nearest, as masks::source_index).
PYXAI_HD int64_t nearest_cell(int64_t dst, int64_t mid, int64_t up) {
  return masks::source_index(dst, mid, up, masks::kNearest).i0;
}

// Host code forces exp_neg inline so that it also inlines (and vectorises) in target clones.
#ifdef __CUDACC__
#define PYXAI_HD_ALWAYS PYXAI_HD
#else
#define PYXAI_HD_ALWAYS inline __attribute__((always_inline))
#endif

// Cephes' expf after its range reduction: exp(x - f ln 2) for the integer-valued f, by its
// polynomial. V is float or a float vector (the CPU kernel's lanes): the same operations.
template <typename V>
PYXAI_HD_ALWAYS V exp_poly(V x, V f) {
  x = x - f * 0.693359375f - f * -2.12194440e-4f;
  const V z = x * x;
  V y = x * 0.0f + 1.9875691500e-4f;
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  return y * z + x + 1.0f;
}

// exp(x) for x <= 0 in float: Cephes' expf polynomial (1.3 ulp over [-87, 0]; 0 below ~-88) with
// only integer selects and no library call, so that CPU loops over pixels vectorise (GCC does
// not if-convert float selects here); double uses std::exp.
PYXAI_HD_ALWAYS float exp_neg(float x) {
  const float fx = x * 1.44269504088896341f + 0.5f;
  int32_t i = static_cast<int32_t>(fx);  // truncation (x86: INT_MIN for huge or NaN x)
  i = i < -127 ? -127 : i;
  i -= static_cast<int32_t>(static_cast<float>(i) > fx);  // floor
  const int32_t keep = i > -127 ? -1 : 0;  // 0 where the result underflows (x below ~-88)
  i = i < -127 ? -127 : i;
  float y = exp_poly(x, static_cast<float>(i));
  const int32_t bits = (i + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  y *= scale;
  int32_t out;
  std::memcpy(&out, &y, sizeof(out));
  out &= keep;
  std::memcpy(&y, &out, sizeof(y));
  return y;
}
PYXAI_HD double exp_neg(double x) { return exp(x); }

#ifdef PYXAI_WITH_CUDA
// out [N, H, W] and stats [N, 2, H, W] (max, sum of exponentials).
template <typename T>
void smooth_masks_cuda(const SmoothShape& s, const T* params, const T* weight, T* out, T* stats,
                       void* stream);
// fwd, stats: the forward's out and stats.
template <typename T>
void smooth_masks_backward_cuda(const SmoothShape& s, const T* grad, const T* params,
                                const T* weight, const T* fwd, const T* stats, T* out,
                                void* stream);
#endif

}  // namespace smooth_masks
}  // namespace pyxai

#ifndef __CUDACC__
#include <ATen/core/Tensor.h>

namespace pyxai {
namespace smooth_masks {
// Shapes checked (defined in cpu.cpp): params [N, gh, gw] float, weight [K = t^2, H, W] of its
// dtype and device, pad >= 0, step >= 1, H <= step * mid_h, W <= step * mid_w.
SmoothShape check_smooth(const at::Tensor& params, const at::Tensor& weight, int64_t pad,
                         int64_t step);
// check_smooth plus grad and out [N, H, W] and stats [N, 2, H, W] of params' dtype and device
// (the backward).
SmoothShape check_smooth_backward(const at::Tensor& grad, const at::Tensor& params,
                                  const at::Tensor& weight, const at::Tensor& out,
                                  const at::Tensor& stats, int64_t pad, int64_t step);
}  // namespace smooth_masks
}  // namespace pyxai
#endif
