// Small helpers shared by every op family, usable from CPU (.cpp) and CUDA (.cu) code.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define PYXAI_HD __host__ __device__ __forceinline__
#else
#define PYXAI_HD inline
#endif

namespace pyxai {

// Ceil division for positive integers.
PYXAI_HD int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace pyxai
