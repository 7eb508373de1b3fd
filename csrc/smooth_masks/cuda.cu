// smooth_masks family, CUDA kernels (formulas in smooth_masks.h). Raw pointers only.
//
// Forward: one thread per output pixel, the K taps recomputed in three passes (max, sum, pool);
// it writes the pixel's (max, sum) to stats [N, 2, H, W]. Backward: one thread per parameter cell
// sums, in a fixed order, the contributions of every (pixel, tap) that reads it (no atomics),
// from the forward's out and stats.
#include <cuda_runtime.h>

#include "common/cuda_check.h"
#include "smooth_masks/smooth_masks.h"

namespace pyxai {
namespace smooth_masks {
namespace {

__device__ __forceinline__ float exp_dev(float x) { return expf(x); }
__device__ __forceinline__ double exp_dev(double x) { return exp(x); }

// Parameter of tap (ky, kx) at mid cell (r, c), 0 in the padding.
template <typename T>
__device__ __forceinline__ T tap_value(const SmoothShape& s, const T* p, int64_t r, int64_t c,
                                       int64_t ky, int64_t kx) {
  const int64_t i = r + ky - s.pad, j = c + kx - s.pad;
  return (i >= 0 && i < s.gh && j >= 0 && j < s.gw) ? p[i * s.gw + j] : T(0);
}

// (max of 20 a_k, sum of exponentials, pooled value) of mask n at pixel (y, x).
template <typename T>
__device__ void pixel_stats(const SmoothShape& s, const T* p, const T* weight, int64_t y,
                            int64_t x, T* mx_out, T* sum_out, T* m_out) {
  const int64_t r = nearest_cell(y, s.mh, s.uh), c = nearest_cell(x, s.mw, s.uw);
  const int64_t plane = s.h * s.w, pix = y * s.w + x;
  const T cold = static_cast<T>(kColdness);
  T mx = -INFINITY;
  for (int64_t ky = 0; ky < s.taps; ++ky)
    for (int64_t kx = 0; kx < s.taps; ++kx) {
      const T a = weight[(ky * s.taps + kx) * plane + pix] * tap_value(s, p, r, c, ky, kx);
      mx = fmax(mx, cold * a);
    }
  T sum = T(0);
  for (int64_t ky = 0; ky < s.taps; ++ky)
    for (int64_t kx = 0; kx < s.taps; ++kx) {
      const T a = weight[(ky * s.taps + kx) * plane + pix] * tap_value(s, p, r, c, ky, kx);
      sum += exp_dev(cold * a - mx);
    }
  T m = T(0);
  for (int64_t ky = 0; ky < s.taps; ++ky)
    for (int64_t kx = 0; kx < s.taps; ++kx) {
      const T a = weight[(ky * s.taps + kx) * plane + pix] * tap_value(s, p, r, c, ky, kx);
      m += a * (exp_dev(cold * a - mx) / sum);
    }
  *mx_out = mx;
  *sum_out = sum;
  *m_out = m;
}

template <typename T>
__global__ void forward_kernel(SmoothShape s, const T* params, const T* weight, T* out,
                               T* stats) {
  const int64_t plane = s.h * s.w, total = s.n * plane;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t x = i % s.w, y = (i / s.w) % s.h, n = i / plane;
    T* st = stats + 2 * n * plane + y * s.w + x;
    pixel_stats(s, params + n * s.gh * s.gw, weight, y, x, st, st + plane, out + i);
  }
}

// First canvas coordinate in [0, size) whose mid cell is >= cell (nearest_cell is monotone).
__device__ __forceinline__ int64_t first_at(int64_t cell, int64_t mid, int64_t up, int64_t size,
                                            int64_t step) {
  int64_t d = cell * step - 2;
  d = d < 0 ? 0 : d;
  while (d < size && nearest_cell(d, mid, up) < cell) ++d;
  return d;
}

template <typename T>
__global__ void backward_kernel(SmoothShape s, const T* grad, const T* params, const T* weight,
                                const T* fwd, const T* stats, T* out) {
  const int64_t total = s.n * s.gh * s.gw;
  const int64_t plane = s.h * s.w;
  const T cold = static_cast<T>(kColdness);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t q = i % s.gw, p = (i / s.gw) % s.gh, n = i / (s.gw * s.gh);
    const T v = params[i];
    T acc = T(0);
    for (int64_t ky = 0; ky < s.taps; ++ky) {
      const int64_t r = p + s.pad - ky;  // mid row whose tap ky reads grid row p
      if (r < 0 || r >= s.mh) continue;
      for (int64_t kx = 0; kx < s.taps; ++kx) {
        const int64_t c = q + s.pad - kx;
        if (c < 0 || c >= s.mw) continue;
        const T* wk = weight + (ky * s.taps + kx) * plane;
        for (int64_t y = first_at(r, s.mh, s.uh, s.h, s.step);
             y < s.h && nearest_cell(y, s.mh, s.uh) == r; ++y) {
          for (int64_t x = first_at(c, s.mw, s.uw, s.w, s.step);
               x < s.w && nearest_cell(x, s.mw, s.uw) == c; ++x) {
            const int64_t pix = (n * s.h + y) * s.w + x;
            const T* st = stats + 2 * n * plane + y * s.w + x;  // max, then sum a plane later
            const T a = wk[y * s.w + x] * v;
            acc += ((a - fwd[pix]) * cold + T(1)) * (exp_dev(cold * a - st[0]) / st[plane]) *
                   grad[pix] * wk[y * s.w + x];
          }
        }
      }
    }
    out[i] = acc;
  }
}

int blocks_for(int64_t total, int threads) {
  const int64_t b = (total + threads - 1) / threads;
  return static_cast<int>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

}  // namespace

template <typename T>
void smooth_masks_cuda(const SmoothShape& s, const T* params, const T* weight, T* out, T* stats,
                       void* stream) {
  const int64_t total = s.n * s.h * s.w;
  if (total == 0) return;
  forward_kernel<T><<<blocks_for(total, 256), 256, 0, static_cast<cudaStream_t>(stream)>>>(
      s, params, weight, out, stats);
  PYXAI_CUDA_LAUNCH_CHECK();
}

template <typename T>
void smooth_masks_backward_cuda(const SmoothShape& s, const T* grad, const T* params,
                                const T* weight, const T* fwd, const T* stats, T* out,
                                void* stream) {
  const int64_t cells = s.n * s.gh * s.gw;
  if (s.n * s.h * s.w == 0 || cells == 0) return;
  backward_kernel<T><<<blocks_for(cells, 128), 128, 0, static_cast<cudaStream_t>(stream)>>>(
      s, grad, params, weight, fwd, stats, out);
  PYXAI_CUDA_LAUNCH_CHECK();
}

template void smooth_masks_cuda<float>(const SmoothShape&, const float*, const float*, float*,
                                       float*, void*);
template void smooth_masks_cuda<double>(const SmoothShape&, const double*, const double*, double*,
                                        double*, void*);
template void smooth_masks_backward_cuda<float>(const SmoothShape&, const float*, const float*,
                                                const float*, const float*, const float*, float*,
                                                void*);
template void smooth_masks_backward_cuda<double>(const SmoothShape&, const double*,
                                                 const double*, const double*, const double*,
                                                 const double*, double*, void*);

}  // namespace smooth_masks
}  // namespace pyxai
