// lrp family: the fused elementwise steps of one layer's relevance backward (pyxai/ops/lrp.py).
//
// The rule logic itself is declared once, in Python (pyxai/lrp/rules.py: input, parameter and
// output modifiers of each rule); pyxai/ops/lrp.py assembles the batched weights and runs ATen
// convolutions for the heavy part on every backend. What runs natively are the elementwise passes,
// on contiguous tensors viewed as [rows, groups, parts, channels, spatial]:
//
//   split_sign  x [N, G, C, S]                       -> xs [N, G, 2, C, S] = (max(x,0), min(x,0))
//   stab_div    R [NR, G, C, S], z [NZ, G, P, C, S]  -> s [NR, G, P, C, S]
//               s = coef[p] * keep_p * R[r] / stab(z[r % NZ]),  stab(z) = z + eps * (z >= 0 ? 1 : -1)
//               keep_p (mask[p]): 0 -> 1; 1 -> z0[r % N0] > 0; 2 -> z0[r % N0] < 0
//   combine     xs [N, G, P, C, S], g [NR, G, P, C, S] -> R [NR, G, C, S] = sum_p coef[p] xs[r % N] g[r]
#pragma once

#include <cstdint>

#include "common/common.h"

namespace pyxai {
namespace lrp {

constexpr int kMaxParts = 4;

// Shape of one elementwise call. Rows: nr (relevance rows), n (rows of xs or z0), nz (rows of z).
struct EwShape {
  int64_t nr, n, nz;
  int64_t g, p, c, s;
  double eps;
  double coef[kMaxParts];
  int mask[kMaxParts];
  int has_mask;
};

template <typename T>
PYXAI_HD T stabilize(T z, T eps) {
  return z + (z >= T(0) ? eps : -eps);
}

template <typename T>
PYXAI_HD bool keep(int mask, T z0) {
  return mask == 0 || (mask == 1 ? z0 > T(0) : z0 < T(0));
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
                   const at::Tensor& z0, at::Tensor& s);  // z0 undefined unless has_mask
  void (*combine)(const EwShape& e, const at::Tensor& xs, const at::Tensor& g, at::Tensor& r);
};

// The ops: argument checks, allocation and shapes, shared by cpu.cpp and cuda_glue.cpp (host.cpp).
at::Tensor split_sign(const at::Tensor& x, int64_t groups, const Kernels& k);
at::Tensor stab_div(const at::Tensor& grad, const at::Tensor& z, const c10::optional<at::Tensor>& z0,
                    int64_t groups, c10::ArrayRef<double> coef, c10::IntArrayRef mask, double eps,
                    const Kernels& k);
at::Tensor combine(const at::Tensor& xs, const at::Tensor& g, int64_t groups,
                   c10::ArrayRef<double> coef, const Kernels& k);

}  // namespace lrp
}  // namespace pyxai
#endif
