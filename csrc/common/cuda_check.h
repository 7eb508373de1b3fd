// Launch check for .cu files (no ATen): turns a CUDA error into a C++ exception that the ATen glue
// reports as a Python RuntimeError.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace pyxai {

inline void cuda_check(cudaError_t err, const char* file, int line) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("pyxai CUDA error: ") + cudaGetErrorString(err) + " at " +
                             file + ":" + std::to_string(line));
  }
}

}  // namespace pyxai

#define PYXAI_CUDA_LAUNCH_CHECK() ::pyxai::cuda_check(cudaGetLastError(), __FILE__, __LINE__)
