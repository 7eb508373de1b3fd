// Argument checks shared by the ATen glue of every op family (host code only, never in .cu files).
// The Python wrappers in pyxai.ops validate first with friendlier messages; these checks make the
// raw torch.ops.pyxai.* entry points safe on their own: no kernel ever sees a bad argument.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <string>

namespace pyxai {

inline void check_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.defined(), "pyxai: '", name, "' is undefined");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble,
              "pyxai: '", name, "' must be float32 or float64, got ", t.scalar_type());
}

inline void check_dim(const at::Tensor& t, int64_t dim, const char* name) {
  TORCH_CHECK(t.dim() == dim, "pyxai: '", name, "' must have ", dim, " dimensions, got shape ",
              t.sizes());
}

inline void check_same_device(const at::Tensor& a, const at::Tensor& b, const char* na,
                              const char* nb) {
  TORCH_CHECK(a.device() == b.device(), "pyxai: '", na, "' is on ", a.device(), " but '", nb,
              "' is on ", b.device());
}

inline void check_same_dtype(const at::Tensor& a, const at::Tensor& b, const char* na,
                             const char* nb) {
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "pyxai: '", na, "' is ", a.scalar_type(),
              " but '", nb, "' is ", b.scalar_type());
}

}  // namespace pyxai
