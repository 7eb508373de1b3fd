// masks family, CUDA kernels. Raw pointers only: the ATen glue lives in cuda_glue.cpp.
#include <cuda_runtime.h>

#include "common/cuda_check.h"
#include "masks/masks.h"

namespace pyxai {
namespace masks {
namespace {

__device__ __forceinline__ int64_t clamp_offset(int64_t o, int64_t canvas, int64_t size) {
  return o < 0 ? 0 : (o > canvas - size ? canvas - size : o);
}

// Mask n at output pixel (y, x).
template <typename T>
__device__ __forceinline__ T mask_at(const MaskShape& s, const T* grids, const int64_t* offsets,
                                     int64_t n, int64_t y, int64_t x) {
  const int64_t oy = clamp_offset(offsets[2 * n], s.uh, s.h);
  const int64_t ox = clamp_offset(offsets[2 * n + 1], s.uw, s.w);
  const SourceIndex r = source_index(y + oy, s.gh, s.uh, s.mode);
  const SourceIndex c = source_index(x + ox, s.gw, s.uw, s.mode);
  return blend4(grids + n * s.gh * s.gw, s.gw, r, c);
}

template <typename T>
__global__ void upsample_masks_kernel(MaskShape s, const T* grids, const int64_t* offsets, T* out) {
  const int64_t total = s.n * s.h * s.w;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t x = i % s.w, y = (i / s.w) % s.h, n = i / (s.w * s.h);
    out[i] = mask_at(s, grids, offsets, n, y, x);
  }
}

// out[n*B + b, p, y, x] = x[b, p, y, x] * m + baseline[b, p, y, x] * (1 - m)
template <typename T>
__global__ void upsample_blend_kernel(MaskShape s, int64_t bp, const T* x, const T* baseline,
                                      const T* grids, const int64_t* offsets, T* out) {
  const int64_t plane = s.h * s.w;
  const int64_t total = s.n * bp * plane;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t pix = i % plane, src = i % (bp * plane), n = i / (bp * plane);
    const T m = mask_at(s, grids, offsets, n, pix / s.w, pix % s.w);
    out[i] = x[src] * m + baseline[src] * (T(1) - m);
  }
}

// out[k, y, x] = sum_n weights[n, k] * m_n(y, x); one thread per (k, pixel), fixed order over n.
template <typename T>
__global__ void weighted_mask_sum_kernel(MaskShape s, int64_t k, const T* grids,
                                         const int64_t* offsets, const T* weights, T* out) {
  const int64_t plane = s.h * s.w;
  const int64_t total = k * plane;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t pix = i % plane, kk = i / plane;
    const int64_t y = pix / s.w, x = pix % s.w;
    T acc = T(0);
    for (int64_t n = 0; n < s.n; ++n) acc += weights[n * k + kk] * mask_at(s, grids, offsets, n, y, x);
    out[i] = acc;
  }
}

// Backward, columns pass: thread per row (n, y) owns work[n, y, :] (see masks.h).
template <typename T>
__global__ void masks_backward_cols_kernel(MaskShape s, const T* grad, const int64_t* offsets,
                                           T* work) {
  const int64_t total = s.n * s.h;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / s.h;
    const int64_t ox = clamp_offset(offsets[2 * n + 1], s.uw, s.w);
    T* t = work + i * s.gw;
    for (int64_t j = 0; j < s.gw; ++j) t[j] = T(0);
    const T* g = grad + i * s.w;
    for (int64_t x = 0; x < s.w; ++x) {
      scatter_weighted(t, 1, source_index(x + ox, s.gw, s.uw, s.mode), g[x]);
    }
  }
}

// Backward, rows pass: thread per column (n, j) owns out[n, :, j].
template <typename T>
__global__ void masks_backward_rows_kernel(MaskShape s, const int64_t* offsets, const T* work,
                                           T* out) {
  const int64_t total = s.n * s.gw;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / s.gw, j = i % s.gw;
    const int64_t oy = clamp_offset(offsets[2 * n], s.uh, s.h);
    T* o = out + n * s.gh * s.gw + j;
    for (int64_t r = 0; r < s.gh; ++r) o[r * s.gw] = T(0);
    const T* t = work + n * s.h * s.gw + j;
    for (int64_t y = 0; y < s.h; ++y) {
      scatter_weighted(o, s.gw, source_index(y + oy, s.gh, s.uh, s.mode), t[y * s.gw]);
    }
  }
}

}  // namespace

template <typename T>
void upsample_masks_backward_cuda(const MaskShape& s, const T* grad, const int64_t* offsets,
                                  T* work, T* out, void* stream) {
  if (s.n == 0) return;
  const auto st = static_cast<cudaStream_t>(stream);
  masks_backward_cols_kernel<T><<<blocks_for(s.n * s.h), kThreads, 0, st>>>(s, grad, offsets,
                                                                            work);
  PYXAI_CUDA_LAUNCH_CHECK();
  masks_backward_rows_kernel<T><<<blocks_for(s.n * s.gw), kThreads, 0, st>>>(s, offsets, work,
                                                                             out);
  PYXAI_CUDA_LAUNCH_CHECK();
}

template <typename T>
void upsample_masks_cuda(const MaskShape& s, const T* grids, const int64_t* offsets, T* out,
                         void* stream) {
  const int64_t total = s.n * s.h * s.w;
  if (total == 0) return;
  upsample_masks_kernel<T><<<blocks_for(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      s, grids, offsets, out);
  PYXAI_CUDA_LAUNCH_CHECK();
}

template <typename T>
void upsample_blend_cuda(const MaskShape& s, int64_t b, int64_t p, const T* x, const T* baseline,
                         const T* grids, const int64_t* offsets, T* out, void* stream) {
  const int64_t total = s.n * b * p * s.h * s.w;
  if (total == 0) return;
  upsample_blend_kernel<T><<<blocks_for(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      s, b * p, x, baseline, grids, offsets, out);
  PYXAI_CUDA_LAUNCH_CHECK();
}

template <typename T>
void weighted_mask_sum_cuda(const MaskShape& s, int64_t k, const T* grids, const int64_t* offsets,
                            const T* weights, T* out, void* stream) {
  const int64_t total = k * s.h * s.w;
  if (total == 0) return;
  weighted_mask_sum_kernel<T><<<blocks_for(total), kThreads, 0,
                                static_cast<cudaStream_t>(stream)>>>(s, k, grids, offsets,
                                                                     weights, out);
  PYXAI_CUDA_LAUNCH_CHECK();
}

#define PYXAI_INSTANTIATE(T)                                                                    \
  template void upsample_masks_cuda<T>(const MaskShape&, const T*, const int64_t*, T*, void*);  \
  template void upsample_blend_cuda<T>(const MaskShape&, int64_t, int64_t, const T*, const T*,  \
                                       const T*, const int64_t*, T*, void*);                    \
  template void weighted_mask_sum_cuda<T>(const MaskShape&, int64_t, const T*, const int64_t*,  \
                                          const T*, T*, void*);                                 \
  template void upsample_masks_backward_cuda<T>(const MaskShape&, const T*, const int64_t*, T*, \
                                                T*, void*);
PYXAI_INSTANTIATE(float)
PYXAI_INSTANTIATE(double)
#undef PYXAI_INSTANTIATE

}  // namespace masks
}  // namespace pyxai
