// sobol family, CPU kernels: sobol_design (design rows by index), sobol_indices (estimators).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <limits>

#include "common/checks.h"
#include "sobol/sobol.h"

namespace pyxai {
namespace sobol {

int parse_estimator(const std::string& name) {
  if (name == "jansen") return kJansen;
  if (name == "homma") return kHomma;
  if (name == "saltelli") return kSaltelli;
  if (name == "janon") return kJanon;
  if (name == "glen") return kGlen;
  TORCH_CHECK(false, "pyxai: unknown Sobol estimator '", name,
              "' (expected jansen, homma, saltelli, janon or glen)");
}

void check_design(const at::Tensor& a, const at::Tensor& b, int64_t first, int64_t count) {
  check_float(a, "A");
  check_float(b, "B");
  check_dim(a, 2, "A");
  TORCH_CHECK(b.sizes() == a.sizes(), "pyxai: 'B' must have the shape of 'A' ", a.sizes(), ", got ",
              b.sizes());
  check_same_dtype(a, b, "A", "B");
  check_same_device(a, b, "A", "B");
  TORCH_CHECK(a.size(0) > 0 && a.size(1) > 0, "pyxai: 'A' must be a non-empty [N, d] design");
  const int64_t total = (a.size(1) + 2) * a.size(0);
  TORCH_CHECK(first >= 0 && count >= 0 && first + count <= total, "pyxai: rows [", first, ", ",
              first + count, ") outside the design's ", total, " rows");
}

void check_outputs(const at::Tensor& ya, const at::Tensor& yb, const at::Tensor& yc) {
  check_float(ya, "yA");
  check_dim(ya, 2, "yA");
  check_dim(yc, 3, "yC");
  TORCH_CHECK(yb.sizes() == ya.sizes(), "pyxai: 'yB' must have the shape of 'yA'");
  TORCH_CHECK(yc.size(1) == ya.size(0) && yc.size(2) == ya.size(1),
              "pyxai: 'yC' must have shape [d, N, P] with [N, P] = yA's shape");
  TORCH_CHECK(ya.size(0) >= 2, "pyxai: Sobol estimators need at least 2 design points");
  check_same_dtype(ya, yb, "yA", "yB");
  check_same_dtype(ya, yc, "yA", "yC");
  check_same_device(ya, yb, "yA", "yB");
  check_same_device(ya, yc, "yA", "yC");
}

namespace {

at::Tensor sobol_design_cpu(const at::Tensor& a_, const at::Tensor& b_, int64_t first,
                            int64_t count) {
  check_design(a_, b_, first, count);
  auto a = a_.contiguous();
  auto b = b_.contiguous();
  const int64_t n = a.size(0), d = a.size(1);
  auto out = at::empty({count, d}, a.options());
  if (count == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "sobol_design_cpu", [&] {
    const scalar_t* pa = a.data_ptr<scalar_t>();
    const scalar_t* pb = b.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, count, 64, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        for (int64_t j = 0; j < d; ++j) o[r * d + j] = design_value(pa, pb, n, d, first + r, j);
      }
    });
  });
  return out;
}

at::Tensor sobol_indices_cpu(const at::Tensor& ya_, const at::Tensor& yb_, const at::Tensor& yc_,
                             std::string estimator) {
  check_outputs(ya_, yb_, yc_);
  const int est = parse_estimator(estimator);
  auto ya = ya_.contiguous();
  auto yb = yb_.contiguous();
  auto yc = yc_.contiguous();
  const int64_t n = ya.size(0), p = ya.size(1), d = yc.size(0);
  auto out = at::empty({2, d, p}, ya.options());
  if (d * p == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(ya.scalar_type(), "sobol_indices_cpu", [&] {
    const double eps = std::numeric_limits<scalar_t>::epsilon();
    const scalar_t* pa = ya.data_ptr<scalar_t>();
    const scalar_t* pb = yb.data_ptr<scalar_t>();
    const scalar_t* pc = yc.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, d * p, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t i = t / p, q = t % p;
        const Moments m = moments(pa, pb, pc + i * n * p, n, p, q);
        double res[2];
        indices_from_moments(m, n, est, eps, res);
        o[t] = static_cast<scalar_t>(res[0]);
        o[d * p + t] = static_cast<scalar_t>(res[1]);
      }
    });
  });
  return out;
}

}  // namespace
}  // namespace sobol
}  // namespace pyxai

TORCH_LIBRARY_IMPL(pyxai, CPU, m) {
  m.impl("sobol_design", &pyxai::sobol::sobol_design_cpu);
  m.impl("sobol_indices", &pyxai::sobol::sobol_indices_cpu);
}
