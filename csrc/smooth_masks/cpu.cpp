// smooth_masks family, CPU kernels: smooth_masks and its backward (formulas in smooth_masks.h).
//
// Both work a row of pixels at a time, tap-major ([K][W] buffers), so every loop over pixels is a
// unit-stride loop the compiler vectorises (exp_neg included); the forward runs one task per
// (mask, row), the backward one task per block of rows (each sums into its own buffer: fixed
// order, no atomics).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "common/checks.h"
#include "smooth_masks/smooth_masks.h"

namespace pyxai {
namespace smooth_masks {

SmoothShape check_smooth(const at::Tensor& params, const at::Tensor& weight, int64_t pad,
                         int64_t step) {
  check_float(params, "params");
  check_dim(params, 3, "params");
  check_dim(weight, 3, "weight");
  check_same_dtype(params, weight, "params", "weight");
  check_same_device(params, weight, "params", "weight");
  TORCH_CHECK(pad >= 0, "pyxai: 'pad' must be >= 0, got ", pad);
  TORCH_CHECK(step >= 1, "pyxai: 'step' must be >= 1, got ", step);
  const int64_t k = weight.size(0);
  int64_t t = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(k))));
  TORCH_CHECK(t >= 1 && t * t == k, "pyxai: 'weight' must have t * t tap planes, got ", k);
  SmoothShape s{params.size(0), params.size(1), params.size(2), t, pad, step, 0, 0, 0, 0,
                weight.size(1), weight.size(2)};
  TORCH_CHECK(s.gh > 0 && s.gw > 0, "pyxai: 'params' must have a non-empty grid");
  s.mh = s.gh + 2 * pad - t + 1;
  s.mw = s.gw + 2 * pad - t + 1;
  TORCH_CHECK(s.mh > 0 && s.mw > 0, "pyxai: ", t, " x ", t, " taps do not fit the padded grid");
  s.uh = step * s.mh;
  s.uw = step * s.mw;
  TORCH_CHECK(s.h > 0 && s.w > 0 && s.h <= s.uh && s.w <= s.uw, "pyxai: 'weight' planes ",
              s.h, " x ", s.w, " must be non-empty and fit the canvas ", s.uh, " x ", s.uw);
  return s;
}

SmoothShape check_smooth_backward(const at::Tensor& grad, const at::Tensor& params,
                                  const at::Tensor& weight, int64_t pad, int64_t step) {
  const SmoothShape s = check_smooth(params, weight, pad, step);
  check_float(grad, "grad");
  TORCH_CHECK(grad.dim() == 3 && grad.size(0) == s.n && grad.size(1) == s.h && grad.size(2) == s.w,
              "pyxai: 'grad' must have shape [", s.n, ", ", s.h, ", ", s.w, "], got ",
              grad.sizes());
  check_same_dtype(grad, params, "grad", "params");
  check_same_device(grad, params, "grad", "params");
  return s;
}

namespace {

constexpr int64_t kBlockRows = 16;  // rows per backward task

// Per-call tables: the padded grids [N, gh + 2 pad, gw + 2 pad] and the mid cell of each column.
template <typename T>
std::vector<T> padded_grids(const SmoothShape& s, const T* p) {
  const int64_t ph = s.gh + 2 * s.pad, pw = s.gw + 2 * s.pad;
  std::vector<T> out(s.n * ph * pw, T(0));
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t i = 0; i < s.gh; ++i)
      std::copy(p + (n * s.gh + i) * s.gw, p + (n * s.gh + i + 1) * s.gw,
                out.data() + (n * ph + i + s.pad) * pw + s.pad);
  return out;
}

std::vector<int64_t> column_cells(const SmoothShape& s) {
  std::vector<int64_t> c(s.w);
  for (int64_t x = 0; x < s.w; ++x) c[x] = nearest_cell(x, s.mw, s.uw);
  return c;
}

// x86-64 CPUs with AVX2 run an AVX2 build of the row loops, others the baseline (SSE2) build,
// picked at load time by CPU feature ("arch=" clones test the CPU model, which fails on AMD).
// No FMA, so both builds do the same arithmetic.
#if defined(__x86_64__) && defined(__GNUC__) && defined(__ELF__)
#define PYXAI_ROW_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define PYXAI_ROW_CLONES
#endif

// Scratch of one output row: v [K][W] (tap values, shared by the rows of one mid row r), a [K][W]
// (weighted taps), e [K][W] (exponentials), mx, sum, m [W]; backward: gsum [K][W] (the taps'
// gradients summed over the rows of mid row g_r, added to the grid when r changes).
template <typename T>
struct Row {
  std::vector<T> v, a, e, mx, sum, m, gsum;
  const T* v_grid = nullptr;  // the padded grid and mid row v holds
  int64_t v_r = -1, g_r = -1;
  explicit Row(const SmoothShape& s)
      : v(s.taps * s.taps * s.w), a(v.size()), e(v.size()), mx(s.w), sum(s.w), m(s.w),
        gsum(v.size(), T(0)) {}
};

// Row y of one mask into `row` (row.m is the output). pg: the mask's padded grid; wt: weight.
template <typename T>
PYXAI_ROW_CLONES void compute_row(const SmoothShape& s, const T* pg, const T* wt,
                                  const int64_t* cols, int64_t y, Row<T>& row) {
  const int64_t pw = s.gw + 2 * s.pad, w = s.w, kk = s.taps * s.taps;
  const int64_t r = nearest_cell(y, s.mh, s.uh);
  const T cold = static_cast<T>(kColdness);
  if (row.v_r != r || row.v_grid != pg) {  // gather the tap values once per mid row
    for (int64_t ky = 0; ky < s.taps; ++ky) {
      const T* prow = pg + (r + ky) * pw;
      for (int64_t kx = 0; kx < s.taps; ++kx) {
        T* vk = row.v.data() + (ky * s.taps + kx) * w;
        for (int64_t x = 0; x < w; ++x) vk[x] = prow[cols[x] + kx];
      }
    }
    row.v_r = r;
    row.v_grid = pg;
  }
  T* mx = row.mx.data();
  T* sum = row.sum.data();
  T* m = row.m.data();
  for (int64_t x = 0; x < w; ++x) mx[x] = -std::numeric_limits<T>::infinity();
  for (int64_t k = 0; k < kk; ++k) {
    const T* wk = wt + (k * s.h + y) * w;
    const T* vk = row.v.data() + k * w;
    T* ak = row.a.data() + k * w;
    for (int64_t x = 0; x < w; ++x) ak[x] = wk[x] * vk[x];
    for (int64_t x = 0; x < w; ++x) mx[x] = std::max(mx[x], cold * ak[x]);
  }
  for (int64_t x = 0; x < w; ++x) sum[x] = T(0);
  for (int64_t k = 0; k < kk; ++k) {
    const T* ak = row.a.data() + k * w;
    T* ek = row.e.data() + k * w;
    for (int64_t x = 0; x < w; ++x) ek[x] = exp_neg(cold * ak[x] - mx[x]);
    for (int64_t x = 0; x < w; ++x) sum[x] += ek[x];
  }
  for (int64_t x = 0; x < w; ++x) m[x] = T(0);
  for (int64_t k = 0; k < kk; ++k) {
    const T* ak = row.a.data() + k * w;
    const T* ek = row.e.data() + k * w;
    for (int64_t x = 0; x < w; ++x) m[x] += ak[x] * (ek[x] / sum[x]);
  }
}

// Adds row.gsum (the taps' gradients of mid row row.g_r) to acc, the mask's padded-grid gradient,
// and clears it.
template <typename T>
void flush_row(const SmoothShape& s, const int64_t* cols, Row<T>& row, T* acc) {
  if (row.g_r < 0) return;
  const int64_t pw = s.gw + 2 * s.pad, w = s.w;
  for (int64_t ky = 0; ky < s.taps; ++ky) {
    T* arow = acc + (row.g_r + ky) * pw;
    for (int64_t kx = 0; kx < s.taps; ++kx) {
      T* gk = row.gsum.data() + (ky * s.taps + kx) * w;
      for (int64_t x = 0; x < w; ++x) arow[cols[x] + kx] += gk[x];
      std::fill(gk, gk + w, T(0));
    }
  }
  row.g_r = -1;
}

// Adds row y's contribution (after compute_row) to the taps' gradients of its mid row (flushing
// the previous mid row's into acc first).
template <typename T>
PYXAI_ROW_CLONES void backward_row(const SmoothShape& s, const T* wt, const int64_t* cols,
                                   int64_t y, const T* grad, Row<T>& row, T* acc) {
  const int64_t w = s.w, kk = s.taps * s.taps;
  const int64_t r = nearest_cell(y, s.mh, s.uh);
  if (row.g_r != r) {
    flush_row(s, cols, row, acc);
    row.g_r = r;
  }
  const T cold = static_cast<T>(kColdness);
  const T* m = row.m.data();
  const T* sum = row.sum.data();
  for (int64_t k = 0; k < kk; ++k) {
    const T* ak = row.a.data() + k * w;
    const T* ek = row.e.data() + k * w;
    const T* wk = wt + (k * s.h + y) * w;
    T* gk = row.gsum.data() + k * w;
    // the reference's order: ((a - m) * 20 + 1) * s * grad * weight
    for (int64_t x = 0; x < w; ++x)
      gk[x] += ((ak[x] - m[x]) * cold + T(1)) * (ek[x] / sum[x]) * grad[x] * wk[x];
  }
}

}  // namespace

at::Tensor smooth_masks_cpu(const at::Tensor& params_, const at::Tensor& weight_, int64_t pad,
                            int64_t step) {
  const SmoothShape s = check_smooth(params_, weight_, pad, step);
  auto params = params_.contiguous();
  auto weight = weight_.contiguous();
  auto out = at::empty({s.n, s.h, s.w}, params.options());
  if (s.n == 0) return out;
  const auto cols = column_cells(s);
  const int64_t pgsize = (s.gh + 2 * s.pad) * (s.gw + 2 * s.pad);
  AT_DISPATCH_FLOATING_TYPES(params.scalar_type(), "smooth_masks_cpu", [&] {
    const auto pg = padded_grids(s, params.data_ptr<scalar_t>());
    const scalar_t* wt = weight.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, s.n * s.h, 1, [&](int64_t begin, int64_t end) {
      Row<scalar_t> row(s);
      for (int64_t i = begin; i < end; ++i) {
        const int64_t n = i / s.h, y = i % s.h;
        compute_row(s, pg.data() + n * pgsize, wt, cols.data(), y, row);
        std::copy(row.m.begin(), row.m.end(), o + i * s.w);
      }
    });
  });
  return out;
}

at::Tensor smooth_masks_backward_cpu(const at::Tensor& grad_, const at::Tensor& params_,
                                     const at::Tensor& weight_, int64_t pad, int64_t step) {
  const SmoothShape s = check_smooth_backward(grad_, params_, weight_, pad, step);
  auto grad = grad_.contiguous();
  auto params = params_.contiguous();
  auto weight = weight_.contiguous();
  auto out = at::empty({s.n, s.gh, s.gw}, params.options());
  if (s.n == 0) return out;
  const auto cols = column_cells(s);
  const int64_t ph = s.gh + 2 * s.pad, pw = s.gw + 2 * s.pad;
  AT_DISPATCH_FLOATING_TYPES(params.scalar_type(), "smooth_masks_backward_cpu", [&] {
    const auto pg = padded_grids(s, params.data_ptr<scalar_t>());
    const scalar_t* wt = weight.data_ptr<scalar_t>();
    const scalar_t* gr = grad.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    // Row blocks of kBlockRows rows (a count that does not depend on the thread count) each sum
    // into their own padded grid; the blocks are then added in order: the same bits on any
    // number of threads.
    const int64_t blocks = ceil_div(s.h, kBlockRows), cells = ph * pw;
    std::vector<scalar_t> part(s.n * blocks * cells, scalar_t(0));
    at::parallel_for(0, s.n * blocks, 1, [&](int64_t begin, int64_t end) {
      Row<scalar_t> row(s);
      for (int64_t i = begin; i < end; ++i) {
        const int64_t n = i / blocks, y0 = (i % blocks) * kBlockRows;
        const int64_t y1 = std::min(s.h, y0 + kBlockRows);
        for (int64_t y = y0; y < y1; ++y) {
          compute_row(s, pg.data() + n * cells, wt, cols.data(), y, row);
          backward_row(s, wt, cols.data(), y, gr + (n * s.h + y) * s.w, row,
                       part.data() + i * cells);
        }
        flush_row(s, cols.data(), row, part.data() + i * cells);
      }
    });
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t i = 0; i < s.gh; ++i)
        for (int64_t j = 0; j < s.gw; ++j) {
          scalar_t v = scalar_t(0);
          for (int64_t b = 0; b < blocks; ++b)
            v += part[(n * blocks + b) * cells + (i + s.pad) * pw + j + s.pad];
          o[(n * s.gh + i) * s.gw + j] = v;
        }
  });
  return out;
}

}  // namespace smooth_masks
}  // namespace pyxai

TORCH_LIBRARY_IMPL(pyxai, CPU, m) {
  m.impl("smooth_masks", &pyxai::smooth_masks::smooth_masks_cpu);
  m.impl("smooth_masks_backward", &pyxai::smooth_masks::smooth_masks_backward_cpu);
}
