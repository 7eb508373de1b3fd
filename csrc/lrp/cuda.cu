// lrp family, CUDA: the fused elementwise kernels. Raw pointers only: the ATen glue lives in
// cuda_glue.cpp and host.cpp (the convolutions go through ATen/cuDNN from pyxai/ops/lrp.py).
#include <cuda_runtime.h>

#include "common/cuda_check.h"
#include "lrp/lrp.h"

namespace pyxai {
namespace lrp {
namespace {

template <typename T>
__global__ void split_sign_kernel(int64_t total, const T* x, T* xs, int64_t inner) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ng = i / inner, j = i % inner;
    const T v = x[i];
    xs[(ng * 2) * inner + j] = v > T(0) ? v : T(0);
    xs[(ng * 2 + 1) * inner + j] = v < T(0) ? v : T(0);
  }
}

template <typename T>
__global__ void stab_div_kernel(EwShape e, const T* grad, const T* z, const T* z0, T* s) {
  const int64_t inner = e.c * e.s;
  const int64_t total = e.nr * e.g * e.p * inner;
  const T eps = static_cast<T>(e.eps);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = i % inner, blk = i / inner;
    const int64_t p = blk % e.p, g = (blk / e.p) % e.g, r = blk / (e.p * e.g);
    const T rv = grad[(r * e.g + g) * inner + j];
    const T zv = z[(((r % e.nz) * e.g + g) * e.p + p) * inner + j];
    T v = rv / stabilize(zv, eps) * static_cast<T>(e.coef[p]);
    if (e.has_mask && e.mask[p] != 0) {
      const T z0v = z0[((r % e.n) * e.g + g) * inner + j];
      v = keep(e.mask[p], z0v) ? v : T(0);
    }
    s[i] = v;
  }
}

template <typename T>
__global__ void combine_kernel(EwShape e, const T* xs, const T* g, T* r) {
  const int64_t inner = e.c * e.s;
  const int64_t total = e.nr * e.g * inner;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = i % inner, blk = i / inner;
    const int64_t gg = blk % e.g, row = blk / e.g;
    const T* xb = xs + ((row % e.n) * e.g + gg) * e.p * inner + j;
    const T* gb = g + blk * e.p * inner + j;
    T acc = xb[0] * gb[0] * static_cast<T>(e.coef[0]);
    for (int64_t p = 1; p < e.p; ++p) acc += xb[p * inner] * gb[p * inner] * static_cast<T>(e.coef[p]);
    r[i] = acc;
  }
}

}  // namespace

template <typename T>
void split_sign_cuda(const EwShape& e, const T* x, T* xs, void* stream) {
  const int64_t inner = e.c * e.s, total = e.n * e.g * inner;
  if (total == 0) return;
  split_sign_kernel<T><<<blocks_for(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      total, x, xs, inner);
  PYXAI_CUDA_LAUNCH_CHECK();
}

template <typename T>
void stab_div_cuda(const EwShape& e, const T* grad, const T* z, const T* z0, T* s, void* stream) {
  const int64_t total = e.nr * e.g * e.p * e.c * e.s;
  if (total == 0) return;
  stab_div_kernel<T><<<blocks_for(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      e, grad, z, z0, s);
  PYXAI_CUDA_LAUNCH_CHECK();
}

template <typename T>
void combine_cuda(const EwShape& e, const T* xs, const T* g, T* r, void* stream) {
  const int64_t total = e.nr * e.g * e.c * e.s;
  if (total == 0) return;
  combine_kernel<T><<<blocks_for(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      e, xs, g, r);
  PYXAI_CUDA_LAUNCH_CHECK();
}

#define PYXAI_INSTANTIATE(T)                                                                  \
  template void split_sign_cuda<T>(const EwShape&, const T*, T*, void*);                      \
  template void stab_div_cuda<T>(const EwShape&, const T*, const T*, const T*, T*, void*);    \
  template void combine_cuda<T>(const EwShape&, const T*, const T*, T*, void*);
PYXAI_INSTANTIATE(float)
PYXAI_INSTANTIATE(double)
#undef PYXAI_INSTANTIATE

}  // namespace lrp
}  // namespace pyxai
