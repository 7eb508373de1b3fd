// sobol family, CUDA kernels. Raw pointers only: the ATen glue lives in cuda_glue.cpp.
#include <cuda_runtime.h>

#include <cfloat>

#include "common/cuda_check.h"
#include "sobol/sobol.h"

namespace pyxai {
namespace sobol {
namespace {

// out[r, j] = design row (first + r), column j.
template <typename T>
__global__ void sobol_design_kernel(const T* a, const T* b, int64_t n, int64_t d, int64_t first,
                                    int64_t count, T* out) {
  const int64_t total = count * d;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = t / d, j = t % d;
    out[t] = design_value(a, b, n, d, first + r, j);
  }
}

// One thread per (dimension i, output column p): both passes over the N design points.
template <typename T>
__global__ void sobol_indices_kernel(const T* ya, const T* yb, const T* yc, int64_t n, int64_t d,
                                     int64_t p, int estimator, double eps, T* out) {
  const int64_t total = d * p;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = t / p, q = t % p;
    const Moments m = moments(ya, yb, yc + i * n * p, n, p, q);
    double res[2];
    indices_from_moments(m, n, estimator, eps, res);
    out[t] = static_cast<T>(res[0]);
    out[total + t] = static_cast<T>(res[1]);
  }
}

}  // namespace

template <typename T>
void sobol_design_cuda(const T* a, const T* b, int64_t n, int64_t d, int64_t first, int64_t count,
                       T* out, void* stream) {
  const int64_t total = count * d;
  if (total == 0) return;
  sobol_design_kernel<T><<<blocks_for(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      a, b, n, d, first, count, out);
  PYXAI_CUDA_LAUNCH_CHECK();
}

template <typename T>
void sobol_indices_cuda(const T* ya, const T* yb, const T* yc, int64_t n, int64_t d, int64_t p,
                        int estimator, double eps, T* out, void* stream) {
  const int64_t total = d * p;
  if (total == 0) return;
  sobol_indices_kernel<T><<<blocks_for(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      ya, yb, yc, n, d, p, estimator, eps, out);
  PYXAI_CUDA_LAUNCH_CHECK();
}

#define PYXAI_INSTANTIATE(T)                                                                   \
  template void sobol_design_cuda<T>(const T*, const T*, int64_t, int64_t, int64_t, int64_t,   \
                                     T*, void*);                                               \
  template void sobol_indices_cuda<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, \
                                      int, double, T*, void*);
PYXAI_INSTANTIATE(float)
PYXAI_INSTANTIATE(double)
#undef PYXAI_INSTANTIATE

}  // namespace sobol
}  // namespace pyxai
