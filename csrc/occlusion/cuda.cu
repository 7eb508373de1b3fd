// occlusion family, CUDA kernels. Raw pointers only: the ATen glue lives in cuda_glue.cpp.
#include <cuda_runtime.h>

#include "common/cuda_check.h"
#include "occlusion/occlusion.h"

namespace pyxai {
namespace occlusion {
namespace {

// out[j*B + b, pos] = inside(window first+j, pos) ? baseline[b, pos] : x[b, pos]
template <typename T>
__global__ void occlusion_perturb_kernel(WindowShape s, int64_t b, int64_t first, int64_t count,
                                         const T* x, const T* baseline, T* out) {
  const int64_t total = count * b * s.numel;
  int64_t start[kMaxDims];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t pos = i % s.numel, row = i / s.numel;
    const int64_t j = row / b, src = (row % b) * s.numel + pos;
    window_start(s, first + j, start);
    out[i] = inside(s, start, pos) ? baseline[src] : x[src];
  }
}

// out[b, pos] = mean of drops[k, b] over the windows k covering pos (fixed order: deterministic)
template <typename T>
__global__ void occlusion_accumulate_kernel(WindowShape s, int64_t b, const T* drops, T* out) {
  const int64_t total = b * s.numel;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = covered_mean(s, drops, b, i / s.numel, i % s.numel);
  }
}

}  // namespace

template <typename T>
void occlusion_perturb_cuda(const WindowShape& s, int64_t b, int64_t first, int64_t count,
                            const T* x, const T* baseline, T* out, void* stream) {
  const int64_t total = count * b * s.numel;
  if (total == 0) return;
  occlusion_perturb_kernel<T><<<blocks_for(total), kThreads, 0,
                                static_cast<cudaStream_t>(stream)>>>(s, b, first, count, x,
                                                                     baseline, out);
  PYXAI_CUDA_LAUNCH_CHECK();
}

template <typename T>
void occlusion_accumulate_cuda(const WindowShape& s, int64_t b, const T* drops, T* out,
                               void* stream) {
  const int64_t total = b * s.numel;
  if (total == 0) return;
  occlusion_accumulate_kernel<T><<<blocks_for(total), kThreads, 0,
                                   static_cast<cudaStream_t>(stream)>>>(s, b, drops, out);
  PYXAI_CUDA_LAUNCH_CHECK();
}

#define PYXAI_INSTANTIATE(T)                                                                   \
  template void occlusion_perturb_cuda<T>(const WindowShape&, int64_t, int64_t, int64_t,       \
                                          const T*, const T*, T*, void*);                      \
  template void occlusion_accumulate_cuda<T>(const WindowShape&, int64_t, const T*, T*, void*);
PYXAI_INSTANTIATE(float)
PYXAI_INSTANTIATE(double)
#undef PYXAI_INSTANTIATE

}  // namespace occlusion
}  // namespace pyxai
