// metrics family, CUDA kernels. Raw pointers only: the ATen glue lives in cuda_glue.cpp.
#include <cuda_runtime.h>

#include "common/cuda_check.h"
#include "metrics/metrics.h"

namespace pyxai {
namespace metrics {
namespace {

// One thread per output element (grid-stride), pixels fastest: coalesced reads and writes.
template <typename T>
__global__ void reveal_by_rank_kernel(RevealShape s, const T* start, const T* finish,
                                      const int64_t* ranks, T* out) {
  const int64_t total = s.count * s.c * s.p;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = i % s.p, c = (i / s.p) % s.c, r = i / (s.p * s.c);
    out[i] = reveal_value(s, start, finish, ranks, r, c, p);
  }
}

}  // namespace

template <typename T>
void reveal_by_rank_cuda(const RevealShape& s, const T* start, const T* finish,
                         const int64_t* ranks, T* out, void* stream) {
  const int64_t total = s.count * s.c * s.p;
  if (total == 0) return;
  reveal_by_rank_kernel<T><<<blocks_for(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      s, start, finish, ranks, out);
  PYXAI_CUDA_LAUNCH_CHECK();
}

template void reveal_by_rank_cuda<float>(const RevealShape&, const float*, const float*,
                                         const int64_t*, float*, void*);
template void reveal_by_rank_cuda<double>(const RevealShape&, const double*, const double*,
                                          const int64_t*, double*, void*);

}  // namespace metrics
}  // namespace pyxai
