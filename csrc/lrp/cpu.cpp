// lrp family, CPU: the fused elementwise kernels (at::parallel_for) and their op registrations.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "common/checks.h"
#include "lrp/lrp.h"

namespace pyxai {
namespace lrp {
namespace {

// Grain: parallelise over (row, group, part) blocks of c * s contiguous elements.
inline int64_t grain(int64_t inner) { return inner >= 4096 ? 1 : (4096 + inner - 1) / inner; }

void split_sign_cpu(const EwShape& e, const at::Tensor& x, at::Tensor& xs) {
  const int64_t inner = e.c * e.s;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lrp_split_sign_cpu", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* op = xs.data_ptr<scalar_t>();
    at::parallel_for(0, e.n * e.g, grain(inner), [&](int64_t begin, int64_t end) {
      for (int64_t ng = begin; ng < end; ++ng) {
        const scalar_t* src = xp + ng * inner;
        scalar_t* pos = op + ng * 2 * inner;
        scalar_t* neg = pos + inner;
        for (int64_t i = 0; i < inner; ++i) {
          const scalar_t v = src[i];
          pos[i] = v > scalar_t(0) ? v : scalar_t(0);
          neg[i] = v < scalar_t(0) ? v : scalar_t(0);
        }
      }
    });
  });
}

void stab_div_cpu(const EwShape& e, const at::Tensor& grad, const at::Tensor& z,
                  const at::Tensor& z0, at::Tensor& s) {
  const int64_t inner = e.c * e.s;
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "lrp_stab_div_cpu", [&] {
    const scalar_t* rp = grad.data_ptr<scalar_t>();
    const scalar_t* zp = z.data_ptr<scalar_t>();
    const scalar_t* z0p = e.has_mask ? z0.data_ptr<scalar_t>() : nullptr;
    scalar_t* sp = s.data_ptr<scalar_t>();
    const scalar_t eps = static_cast<scalar_t>(e.eps);
    at::parallel_for(0, e.nr * e.g * e.p, grain(inner), [&](int64_t begin, int64_t end) {
      for (int64_t idx = begin; idx < end; ++idx) {
        const int64_t p = idx % e.p, g = (idx / e.p) % e.g, r = idx / (e.p * e.g);
        const scalar_t coef = static_cast<scalar_t>(e.coef[p]);
        const scalar_t* rr = rp + (r * e.g + g) * inner;
        const scalar_t* zz = zp + (((r % e.nz) * e.g + g) * e.p + p) * inner;
        scalar_t* out = sp + idx * inner;
        if (z0p != nullptr && e.mask[p] != 0) {
          const scalar_t* z0r = z0p + ((r % e.n) * e.g + g) * inner;
          const int m = e.mask[p];
          for (int64_t i = 0; i < inner; ++i) {
            out[i] = keep(m, z0r[i]) ? rr[i] / stabilize(zz[i], eps) * coef : scalar_t(0);
          }
        } else {
          for (int64_t i = 0; i < inner; ++i) out[i] = rr[i] / stabilize(zz[i], eps) * coef;
        }
      }
    });
  });
}

void combine_cpu(const EwShape& e, const at::Tensor& xs, const at::Tensor& g, at::Tensor& r) {
  const int64_t inner = e.c * e.s;
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "lrp_combine_cpu", [&] {
    const scalar_t* xp = xs.data_ptr<scalar_t>();
    const scalar_t* gp = g.data_ptr<scalar_t>();
    scalar_t* op = r.data_ptr<scalar_t>();
    at::parallel_for(0, e.nr * e.g, grain(inner), [&](int64_t begin, int64_t end) {
      for (int64_t idx = begin; idx < end; ++idx) {
        const int64_t gg = idx % e.g, row = idx / e.g;
        const scalar_t* xb = xp + ((row % e.n) * e.g + gg) * e.p * inner;
        const scalar_t* gb = gp + idx * e.p * inner;
        scalar_t* out = op + idx * inner;
        if (e.p == 1 && e.coef[0] == 1.0) {
          for (int64_t i = 0; i < inner; ++i) out[i] = xb[i] * gb[i];
          continue;
        }
        const scalar_t c0 = static_cast<scalar_t>(e.coef[0]);
        for (int64_t i = 0; i < inner; ++i) out[i] = xb[i] * gb[i] * c0;
        for (int64_t p = 1; p < e.p; ++p) {
          const scalar_t cp = static_cast<scalar_t>(e.coef[p]);
          const scalar_t* xq = xb + p * inner;
          const scalar_t* gq = gb + p * inner;
          for (int64_t i = 0; i < inner; ++i) out[i] += xq[i] * gq[i] * cp;
        }
      }
    });
  });
}

const Kernels kCpuKernels{&split_sign_cpu, &stab_div_cpu, &combine_cpu};

at::Tensor lrp_split_sign_cpu(const at::Tensor& x, int64_t groups) {
  return split_sign(x, groups, kCpuKernels);
}

at::Tensor lrp_stab_div_cpu(const at::Tensor& grad, const at::Tensor& z,
                            const c10::optional<at::Tensor>& z0, int64_t groups,
                            c10::ArrayRef<double> coef, c10::IntArrayRef mask, double eps) {
  return stab_div(grad, z, z0, groups, coef, mask, eps, kCpuKernels);
}

at::Tensor lrp_combine_cpu(const at::Tensor& xs, const at::Tensor& g, int64_t groups,
                           c10::ArrayRef<double> coef) {
  return combine(xs, g, groups, coef, kCpuKernels);
}

}  // namespace
}  // namespace lrp
}  // namespace pyxai

TORCH_LIBRARY_IMPL(pyxai, CPU, m) {
  m.impl("lrp_split_sign", &pyxai::lrp::lrp_split_sign_cpu);
  m.impl("lrp_stab_div", &pyxai::lrp::lrp_stab_div_cpu);
  m.impl("lrp_combine", &pyxai::lrp::lrp_combine_cpu);
}
