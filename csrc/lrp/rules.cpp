// lrp family, host-side rule logic shared by the CPU and CUDA registrations: assembles the batched
// weights, calls ATen convolution / matmul for the heavy part and the device's fused elementwise
// kernels for the rest. Mirrors pyxai/ops/lrp.py::_lrp_reference step by step.
#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/convolution.h>
#include <ATen/ops/convolution_backward.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>

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

// Layer geometry: forward op and its adjoint (transposed convolution / matmul with W).
struct Geometry {
  int64_t d;
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups;

  at::Tensor fwd(const at::Tensor& inp, const at::Tensor& w, const at::Tensor& b) const {
    if (d == 0) return b.defined() ? at::addmm(b, inp, w.t()) : at::mm(inp, w.t());
    const std::vector<int64_t> zeros(d, 0);
    return at::convolution(inp, w, b.defined() ? c10::optional<at::Tensor>(b) : c10::nullopt,
                           stride, padding, dilation, false, zeros, groups);
  }

  // W^T s: the input gradient of the forward op (ATen's backward-data convolution, which is faster
  // on CPU than a transposed convolution); x only gives the input's spatial size.
  at::Tensor adj(const at::Tensor& s, const at::Tensor& w, const at::Tensor& x) const {
    if (d == 0) return at::mm(s, w);
    std::vector<int64_t> shape = x.sizes().vec();
    shape[0] = s.size(0);
    shape[1] = w.size(1) * groups;
    const auto input = at::empty(shape, s.options());
    const std::vector<int64_t> zeros(d, 0);
    return std::get<0>(at::convolution_backward(s, input, w, c10::nullopt, stride, padding, dilation,
                                                false, zeros, groups, {true, false, false}));
  }
};

// One weight for all parts: in-parts concatenated along dim 1, out-parts interleaved per group.
at::Tensor wcat(const std::vector<std::vector<at::Tensor>>& blocks, int64_t groups) {
  std::vector<at::Tensor> rows;
  for (const auto& row : blocks) rows.push_back(row.size() > 1 ? at::cat(row, 1) : row[0]);
  if (rows.size() == 1) return rows[0].contiguous();
  const int64_t cout = rows[0].size(0);
  std::vector<int64_t> shape{groups, cout / groups};
  for (int64_t i = 1; i < rows[0].dim(); ++i) shape.push_back(rows[0].size(i));
  std::vector<at::Tensor> views;
  for (const auto& r : rows) views.push_back(r.reshape(shape));
  std::vector<int64_t> flat{groups * static_cast<int64_t>(rows.size()) * (cout / groups)};
  for (int64_t i = 1; i < rows[0].dim(); ++i) flat.push_back(rows[0].size(i));
  return at::stack(views, 1).reshape(flat);
}

at::Tensor bcat(const std::vector<at::Tensor>& biases, int64_t groups, int64_t cout,
                const at::TensorOptions& opt) {
  bool any = false;
  for (const auto& b : biases) any = any || b.defined();
  if (!any) return at::Tensor();
  std::vector<at::Tensor> bs;
  for (const auto& b : biases) bs.push_back(b.defined() ? b : at::zeros({cout}, opt));
  if (bs.size() == 1) return bs[0];
  std::vector<at::Tensor> views;
  for (const auto& b : bs) views.push_back(b.reshape({groups, -1}));
  return at::stack(views, 1).reshape({-1});
}

at::Tensor xcat(const std::vector<at::Tensor>& parts, int64_t groups) {
  const auto& x = parts[0];
  std::vector<int64_t> shape{x.size(0), groups, x.size(1) / groups};
  std::vector<int64_t> flat{x.size(0), static_cast<int64_t>(parts.size()) * x.size(1)};
  for (int64_t i = 2; i < x.dim(); ++i) {
    shape.push_back(x.size(i));
    flat.push_back(x.size(i));
  }
  std::vector<at::Tensor> views;
  for (const auto& p : parts) views.push_back(p.reshape(shape));
  return at::stack(views, 2).reshape(flat);
}

// Bias parts (undefined when the layer has no bias).
at::Tensor bias_pos(const at::Tensor& b) { return b.defined() ? b.clamp_min(0) : b; }
at::Tensor bias_neg(const at::Tensor& b) { return b.defined() ? b.clamp_max(0) : b; }
at::Tensor plus(const at::Tensor& b, const at::Tensor& part, double scale) {
  return b.defined() ? b + part * scale : b;
}

struct Runner {
  const at::Tensor& x;     // [N, Cin, S] contiguous
  const at::Tensor& grad;  // [NR, Cout, S'] contiguous
  const Geometry& geo;
  const Kernels& k;

  EwShape shape(int64_t nz, int64_t p, int64_t c, int64_t s) const {
    EwShape e{};
    e.nr = grad.size(0);
    e.n = x.size(0);
    e.nz = nz;
    e.g = geo.groups;
    e.p = p;
    e.c = c / geo.groups;
    e.s = s;
    for (int i = 0; i < kMaxParts; ++i) e.coef[i] = 1.0;
    return e;
  }

  // s = coef * mask * grad / stab(z)
  at::Tensor stab_div(const at::Tensor& z_, const at::Tensor& z0, std::vector<double> coef,
                      double eps, bool gamma_mask) const {
    auto z = z_.contiguous();
    const int64_t p = static_cast<int64_t>(coef.size());
    EwShape e = shape(z.size(0), p, grad.size(1), spatial(grad));
    for (int64_t i = 0; i < p; ++i) e.coef[i] = coef[i];
    e.eps = eps;
    e.gamma_mask = gamma_mask ? 1 : 0;
    std::vector<int64_t> sizes = grad.sizes().vec();
    sizes[1] *= p;
    auto s = at::empty(sizes, grad.options());
    at::Tensor z0c = gamma_mask ? z0.contiguous() : at::Tensor();
    if (s.numel() > 0) k.stab_div(e, grad, z, z0c, s);
    return s;
  }

  // R = sum_p coef[p] xs[r % N, p] g[r, p]
  at::Tensor combine(const at::Tensor& xs_, const at::Tensor& g_, std::vector<double> coef) const {
    auto xs = xs_.contiguous();
    auto g = g_.contiguous();
    const int64_t p = static_cast<int64_t>(coef.size());
    EwShape e = shape(x.size(0), p, x.size(1), spatial(x));
    for (int64_t i = 0; i < p; ++i) e.coef[i] = coef[i];
    std::vector<int64_t> sizes = x.sizes().vec();
    sizes[0] = grad.size(0);
    auto r = at::empty(sizes, x.options());
    if (r.numel() > 0) k.combine(e, xs, g, r);
    return r;
  }

  at::Tensor split_sign() const {
    EwShape e = shape(x.size(0), 2, x.size(1), spatial(x));
    std::vector<int64_t> sizes = x.sizes().vec();
    sizes[1] *= 2;
    auto xs = at::empty(sizes, x.options());
    if (xs.numel() > 0) k.split_sign(e, x, xs);
    return xs;
  }
};

}  // namespace

at::Tensor lrp_layer(const at::Tensor& x_, const at::Tensor& grad_, const at::Tensor& weight_,
                     const c10::optional<at::Tensor>& bias_, const c10::optional<at::Tensor>& out_,
                     int64_t d, c10::IntArrayRef stride, c10::IntArrayRef padding,
                     c10::IntArrayRef dilation, int64_t groups, int64_t rule,
                     c10::ArrayRef<double> params, const c10::optional<at::Tensor>& low_,
                     const c10::optional<at::Tensor>& high_, const Kernels& k) {
  check_float(x_, "x");
  check_same_dtype(x_, grad_, "x", "grad");
  check_same_dtype(x_, weight_, "x", "weight");
  check_same_device(x_, grad_, "x", "grad");
  check_same_device(x_, weight_, "x", "weight");
  TORCH_CHECK(x_.dim() == d + 2 && grad_.dim() == d + 2 && weight_.dim() == d + 2,
              "pyxai: lrp: x, grad and weight must have ", d + 2, " dimensions");
  TORCH_CHECK(groups >= 1 && x_.size(1) == weight_.size(1) * groups &&
                  weight_.size(0) % groups == 0 && grad_.size(1) == weight_.size(0),
              "pyxai: lrp: channels of x ", x_.sizes(), ", weight ", weight_.sizes(), ", grad ",
              grad_.sizes(), " do not match (groups ", groups, ")");
  TORCH_CHECK(x_.size(0) > 0 && grad_.size(0) % x_.size(0) == 0,
              "pyxai: lrp: grad rows must be a multiple of x rows");
  TORCH_CHECK(rule >= kEpsilon && rule <= kWSquare, "pyxai: lrp: unknown rule id ", rule);
  const size_t want = rule == kAlphaBeta || rule == kGamma ? 3 : 1;
  TORCH_CHECK(params.size() == want, "pyxai: lrp: rule ", rule, " takes ", want, " params");
  if (d > 0) {
    TORCH_CHECK(static_cast<int64_t>(stride.size()) == d && static_cast<int64_t>(padding.size()) == d &&
                    static_cast<int64_t>(dilation.size()) == d,
                "pyxai: lrp_conv: stride, padding and dilation need ", d, " entries");
  }
  at::Tensor b;
  if (bias_.has_value() && bias_->defined()) {
    b = bias_->contiguous();
    check_same_dtype(x_, b, "x", "bias");
    TORCH_CHECK(b.numel() == weight_.size(0), "pyxai: lrp: bias must have Cout entries");
  }
  at::Tensor out;
  if (out_.has_value() && out_->defined()) {
    out = *out_;
    check_same_dtype(x_, out, "x", "out");
    TORCH_CHECK(out.size(0) == x_.size(0) && out.sizes().slice(1) == grad_.sizes().slice(1),
                "pyxai: lrp: out must be shaped like grad with the rows of x");
  }
  const auto x = x_.contiguous();
  const auto grad = grad_.contiguous();
  const auto w = weight_.contiguous();
  const Geometry geo{d, stride.vec(), padding.vec(), dilation.vec(), d == 0 ? 1 : groups};
  const Runner run{x, grad, geo, k};
  const int64_t g = geo.groups;
  const int64_t cout = w.size(0);

  if (rule == kEpsilon) {
    const at::Tensor z = out.defined() ? out : geo.fwd(x, w, b);
    const auto s = run.stab_div(z, at::Tensor(), {1.0}, params[0], false);
    return run.combine(x, geo.adj(s, w, x), {1.0});
  }
  if (rule == kFlat || rule == kWSquare) {
    at::Tensor wm, bm;
    if (rule == kFlat) {
      wm = at::ones_like(w);
    } else {
      wm = w * w;
      if (b.defined()) bm = b * b;
    }
    std::vector<int64_t> one = x.sizes().vec();
    one[0] = 1;
    const auto z = geo.fwd(at::ones(one, x.options()), wm, bm);
    const auto s = run.stab_div(z, at::Tensor(), {1.0}, params[0], false);
    return geo.adj(s, wm, x).contiguous();
  }
  if (rule == kZBox) {
    TORCH_CHECK(low_.has_value() && high_.has_value(), "pyxai: lrp: rule zbox needs low and high");
    TORCH_CHECK(low_->sizes() == x.sizes() && high_->sizes() == x.sizes(),
                "pyxai: lrp: low and high must be shaped like x");
    check_same_dtype(x_, *low_, "x", "low");
    check_same_dtype(x_, *high_, "x", "high");
    const auto wp = w.clamp_min(0), wn = w.clamp_max(0);
    const at::Tensor bz = b.defined() ? b - b.clamp_min(0) - b.clamp_max(0) : b;
    const auto xs = xcat({x, low_->contiguous(), high_->contiguous()}, g);
    const auto z = geo.fwd(xs, wcat({{w, -wp, -wn}}, g), bz);
    const auto s = run.stab_div(z, at::Tensor(), {1.0}, params[0], false);
    const auto gs = geo.adj(s, wcat({{w, wp, wn}}, g), xs);
    return run.combine(xs, gs, {1.0, -1.0, -1.0});
  }
  if (rule == kGamma && params[2] == 0.0) {  // Zennit <= 0.4: one pass with W + gamma W+
    const auto a = w + w.clamp_min(0) * params[0];
    const auto ba = plus(b, bias_pos(b), params[0]);
    const auto z = geo.fwd(x, a, ba);
    const auto s = run.stab_div(z, at::Tensor(), {1.0}, params[1], false);
    return run.combine(x, geo.adj(s, a, x), {1.0});
  }
  // two-part rules: top z_t = A x+ + B x- + b_t, bottom z_b = B x+ + A x- + b_b
  at::Tensor a, bb, bt, bbot;
  std::vector<double> coef;
  double eps;
  bool gamma_mask = false;
  const bool positive = x.numel() == 0 || x.min().item<double>() >= 0.0;
  if (rule == kZPlus) {
    a = w.clamp_min(0);
    if (!positive) bb = w.clamp_max(0);  // x- = 0: the negative half contributes nothing
    bt = bias_pos(b);
    coef = {1.0};
    eps = params[0];
  } else if (rule == kAlphaBeta) {
    a = w.clamp_min(0);
    bb = w.clamp_max(0);
    bt = bias_pos(b);
    bbot = bias_neg(b);
    coef = {params[0], -params[1]};
    eps = params[2];
  } else {  // generalized gamma
    const double gm = params[0];
    a = w + w.clamp_min(0) * gm;
    bb = w + w.clamp_max(0) * gm;
    bt = plus(b, bias_pos(b), gm);
    bbot = plus(b, bias_neg(b), gm);
    coef = {1.0, 1.0};
    eps = params[1];
    gamma_mask = true;
  }
  const bool two = coef.size() == 2;
  at::Tensor z0;
  if (gamma_mask) z0 = out.defined() ? out : geo.fwd(x, w, b);
  const auto biases = two ? std::vector<at::Tensor>{bt, bbot} : std::vector<at::Tensor>{bt};
  const auto bc = bcat(biases, g, cout, x.options());
  if (positive) {
    const auto wc = two ? wcat({{a}, {bb}}, g) : wcat({{a}}, g);
    const auto z = geo.fwd(x, wc, bc);
    const auto s = run.stab_div(z, z0, coef, eps, gamma_mask);
    return run.combine(x, geo.adj(s, wc, x), {1.0});
  }
  const auto xs = run.split_sign();
  const auto wc = two ? wcat({{a, bb}, {bb, a}}, g) : wcat({{a, bb}}, g);
  const auto z = geo.fwd(xs, wc, bc);
  const auto s = run.stab_div(z, z0, coef, eps, gamma_mask);
  return run.combine(xs, geo.adj(s, wc, xs), {1.0, 1.0});
}

}  // namespace lrp
}  // namespace pyxai
