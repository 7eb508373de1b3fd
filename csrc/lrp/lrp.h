// lrp family: one layer's relevance backward for every LRP rule (see pyxai/ops/lrp.py).
//
// The heavy part is ATen convolution / matmul, called from the host-side rule logic (rules.cpp,
// shared by CPU and CUDA). The elementwise parts are three fused kernels with raw-pointer CPU and
// CUDA implementations, on contiguous tensors viewed as [rows, groups, parts, channels, spatial]:
//
//   split_sign  x [N, G, C, S]                       -> xs [N, G, 2, C, S] = (max(x,0), min(x,0))
//   stab_div    R [NR, G, C, S], z [NZ, G, P, C, S]  -> s [NR, G, P, C, S]
//               s = coef[p] * mask_p * R[r] / stab(z[r % NZ]),  stab(z) = z + eps * (z >= 0 ? 1 : -1)
//               mask (gamma): p = 0 -> z0[r % N] > 0, p = 1 -> z0[r % N] < 0; else 1
//   combine     xs [N, G, P, C, S], g [NR, G, P, C, S] -> R [NR, G, C, S] = sum_p coef[p] xs[r % N] g[r]
#pragma once

#include <cstdint>

#include "common/common.h"

namespace pyxai {
namespace lrp {

enum Rule : int {
  kEpsilon = 0,
  kZPlus = 1,
  kAlphaBeta = 2,
  kGamma = 3,
  kZBox = 4,
  kFlat = 5,
  kWSquare = 6,
};

constexpr int kMaxParts = 3;

// Shape of one elementwise call. Rows: nr (relevance rows), n (input rows), nz (rows of z).
struct EwShape {
  int64_t nr, n, nz;
  int64_t g, p, c, s;
  double eps;
  double coef[kMaxParts];
  int gamma_mask;
};

template <typename T>
PYXAI_HD T stabilize(T z, T eps) {
  return z + (z >= T(0) ? eps : -eps);
}

#ifdef PYXAI_WITH_CUDA
// CUDA launchers (raw pointers; stream is a cudaStream_t passed as void*). Defined in cuda.cu.
template <typename T>
void split_sign_cuda(const EwShape& e, const T* x, T* xs, void* stream);
template <typename T>
void stab_div_cuda(const EwShape& e, const T* grad, const T* z, const T* z0, T* s, void* stream);
template <typename T>
void combine_cuda(const EwShape& e, const T* xs, const T* g, T* r, void* stream);
#endif

}  // namespace lrp
}  // namespace pyxai

#ifndef __CUDACC__
#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>
#include <c10/util/Optional.h>

namespace pyxai {
namespace lrp {

// Device-specific elementwise kernels on contiguous tensors (shapes in EwShape).
struct Kernels {
  void (*split_sign)(const EwShape& e, const at::Tensor& x, at::Tensor& xs);
  void (*stab_div)(const EwShape& e, const at::Tensor& grad, const at::Tensor& z,
                   const at::Tensor& z0, at::Tensor& s);  // z0 undefined unless gamma_mask
  void (*combine)(const EwShape& e, const at::Tensor& xs, const at::Tensor& g, at::Tensor& r);
};

// Host-side rule logic shared by cpu.cpp and cuda_glue.cpp (defined in rules.cpp).
// d == 0: linear layer (x [N, Cin], weight [Cout, Cin]); else a d-D convolution.
at::Tensor lrp_layer(const at::Tensor& x, const at::Tensor& grad, const at::Tensor& weight,
                     const c10::optional<at::Tensor>& bias, const c10::optional<at::Tensor>& out,
                     int64_t d, c10::IntArrayRef stride, c10::IntArrayRef padding,
                     c10::IntArrayRef dilation, int64_t groups, int64_t rule,
                     c10::ArrayRef<double> params, const c10::optional<at::Tensor>& low,
                     const c10::optional<at::Tensor>& high, const Kernels& k);

}  // namespace lrp
}  // namespace pyxai
#endif
