// lrp family, host side of the elementwise ops shared by the CPU and CUDA registrations: argument
// checks, output allocation and the EwShape of each call (the kernels are in cpu.cpp / cuda.cu).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <vector>

#include "common/checks.h"
#include "lrp/lrp.h"

namespace pyxai {
namespace lrp {
namespace {

int64_t spatial(const at::Tensor& t) {
  int64_t s = 1;
  for (int64_t i = 2; i < t.dim(); ++i) s *= t.size(i);
  return s;
}

void check_rows(const at::Tensor& t, const char* name) {
  check_float(t, name);
  TORCH_CHECK(t.dim() >= 2, "pyxai: lrp: '", name, "' must be [rows, channels, ...], got ", t.sizes());
}

void check_like(const at::Tensor& a, const at::Tensor& b, const char* na, const char* nb) {
  check_same_dtype(a, b, na, nb);
  check_same_device(a, b, na, nb);
  TORCH_CHECK(a.dim() == b.dim() && a.sizes().slice(2) == b.sizes().slice(2), "pyxai: lrp: '", na,
              "' ", a.sizes(), " and '", nb, "' ", b.sizes(), " must have the same spatial size");
}

void check_parts(c10::ArrayRef<double> coef, int64_t channels, int64_t groups, int64_t p) {
  TORCH_CHECK(groups >= 1, "pyxai: lrp: groups must be >= 1, got ", groups);
  TORCH_CHECK(p >= 1 && p <= kMaxParts, "pyxai: lrp: 1 to ", kMaxParts, " parts, got ", p);
  TORCH_CHECK(static_cast<int64_t>(coef.size()) == p, "pyxai: lrp: ", p, " coefficients needed, got ",
              coef.size());
  TORCH_CHECK(channels % groups == 0, "pyxai: lrp: ", channels, " channels not divisible by ",
              groups, " groups");
}

EwShape base(int64_t nr, int64_t n, int64_t nz, int64_t g, int64_t p, int64_t c, int64_t s) {
  EwShape e{};
  e.nr = nr;
  e.n = n;
  e.nz = nz;
  e.g = g;
  e.p = p;
  e.c = c / g;
  e.s = s;
  for (int i = 0; i < kMaxParts; ++i) e.coef[i] = 1.0;
  return e;
}

}  // namespace

at::Tensor split_sign(const at::Tensor& x_, int64_t groups, const Kernels& k) {
  check_rows(x_, "x");
  TORCH_CHECK(groups >= 1 && x_.size(1) % groups == 0, "pyxai: lrp_split_sign: ", x_.size(1),
              " channels not divisible by ", groups, " groups");
  const auto x = x_.contiguous();
  std::vector<int64_t> sizes = x.sizes().vec();
  sizes[1] *= 2;
  auto xs = at::empty(sizes, x.options());
  const EwShape e = base(x.size(0), x.size(0), x.size(0), groups, 2, x.size(1), spatial(x));
  if (xs.numel() > 0) k.split_sign(e, x, xs);
  return xs;
}

at::Tensor stab_div(const at::Tensor& grad_, const at::Tensor& z_, const c10::optional<at::Tensor>& z0_,
                    int64_t groups, c10::ArrayRef<double> coef, c10::IntArrayRef mask, double eps,
                    const Kernels& k) {
  check_rows(grad_, "grad");
  check_rows(z_, "z");
  check_like(grad_, z_, "grad", "z");
  const int64_t p = static_cast<int64_t>(coef.size());
  check_parts(coef, grad_.size(1), groups, p);
  TORCH_CHECK(static_cast<int64_t>(mask.size()) == p, "pyxai: lrp_stab_div: one mask per part");
  TORCH_CHECK(z_.size(1) == p * grad_.size(1), "pyxai: lrp_stab_div: z must have ", p, " x ",
              grad_.size(1), " channels, got ", z_.size(1));
  TORCH_CHECK(z_.size(0) > 0 && grad_.size(0) % z_.size(0) == 0,
              "pyxai: lrp_stab_div: grad rows must be a multiple of z rows");
  bool has_mask = false;
  for (const auto m : mask) {
    TORCH_CHECK(m >= 0 && m <= 2, "pyxai: lrp_stab_div: masks are 0 (all), 1 (z0 > 0), 2 (z0 < 0)");
    has_mask = has_mask || m != 0;
  }
  at::Tensor z0;
  int64_t n0 = z_.size(0);
  if (has_mask) {
    TORCH_CHECK(z0_.has_value() && z0_->defined(), "pyxai: lrp_stab_div: masks need z0");
    z0 = z0_->contiguous();
    check_like(grad_, z0, "grad", "z0");
    TORCH_CHECK(z0.size(1) == grad_.size(1) && z0.size(0) > 0 && grad_.size(0) % z0.size(0) == 0,
                "pyxai: lrp_stab_div: z0 must be shaped like grad with a divisor of its rows");
    n0 = z0.size(0);
  }
  const auto grad = grad_.contiguous();
  const auto z = z_.contiguous();
  EwShape e = base(grad.size(0), n0, z.size(0), groups, p, grad.size(1), spatial(grad));
  for (int64_t i = 0; i < p; ++i) {
    e.coef[i] = coef[i];
    e.mask[i] = static_cast<int>(mask[i]);
  }
  e.eps = eps;
  e.has_mask = has_mask ? 1 : 0;
  std::vector<int64_t> sizes = grad.sizes().vec();
  sizes[1] *= p;
  auto s = at::empty(sizes, grad.options());
  if (s.numel() > 0) k.stab_div(e, grad, z, z0, s);
  return s;
}

at::Tensor combine(const at::Tensor& xs_, const at::Tensor& g_, int64_t groups,
                   c10::ArrayRef<double> coef, const Kernels& k) {
  check_rows(xs_, "xs");
  check_rows(g_, "g");
  check_like(xs_, g_, "xs", "g");
  const int64_t p = static_cast<int64_t>(coef.size());
  TORCH_CHECK(xs_.size(1) % p == 0 && g_.size(1) == xs_.size(1),
              "pyxai: lrp_combine: xs and g must have the same P x C channels");
  check_parts(coef, xs_.size(1) / p, groups, p);
  TORCH_CHECK(xs_.size(0) > 0 && g_.size(0) % xs_.size(0) == 0,
              "pyxai: lrp_combine: g rows must be a multiple of xs rows");
  const auto xs = xs_.contiguous();
  const auto g = g_.contiguous();
  EwShape e = base(g.size(0), xs.size(0), xs.size(0), groups, p, xs.size(1) / p, spatial(xs));
  for (int64_t i = 0; i < p; ++i) e.coef[i] = coef[i];
  std::vector<int64_t> sizes = xs.sizes().vec();
  sizes[0] = g.size(0);
  sizes[1] /= p;
  auto r = at::empty(sizes, xs.options());
  if (r.numel() > 0) k.combine(e, xs, g, r);
  return r;
}

}  // namespace lrp
}  // namespace pyxai
