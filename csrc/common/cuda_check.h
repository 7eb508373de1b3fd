// Launch helpers for .cu files (no ATen): grid size, and a launch check that turns a CUDA error into a C++ exception that the ATen glue
// reports as a Python RuntimeError.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace pyxai {

// Launch shape shared by the grid-stride kernels of every family.
constexpr int kThreads = 256;

inline int blocks_for(int64_t total) {
  const int64_t b = (total + kThreads - 1) / kThreads;
  return static_cast<int>(b < 65535 * 8 ? b : 65535 * 8);
}

inline void cuda_check(cudaError_t err, const char* file, int line) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("pyxai CUDA error: ") + cudaGetErrorString(err) + " at " +
                             file + ":" + std::to_string(line));
  }
}

}  // namespace pyxai

#define PYXAI_CUDA_LAUNCH_CHECK() ::pyxai::cuda_check(cudaGetLastError(), __FILE__, __LINE__)
