// smooth_masks family, CPU kernels: smooth_masks and its backward (formulas in smooth_masks.h).
//
// Both work a row of pixels at a time, kLanes (16) pixels together: every pass over the K taps of
// a chunk reads the chunk's weights packed contiguously and writes [K][kLanes] buffers that stay
// in L1 (float: GCC vector extensions, one AVX-512 register a pass; double: scalar lane loops).
// The per-pixel operations are the reference's, except that the forward divides its sum of
// a_k e_k by the denominator once (the reference divides each e_k), the backward divides the
// output gradient once, and multiply-adds are fused on CPUs with FMA; the bits do not depend on
// the layout or the thread count. The forward runs one task per (block of rows, mask) and writes
// each pixel's max and denominator (stats) besides its output; the backward, one task per (block
// of rows, mask), takes them and recomputes each tap's exponential once in a single pass over the
// taps (each block sums into its own buffer: fixed order, no atomics).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <tuple>
#include <utility>
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
                                  const at::Tensor& weight, const at::Tensor& out,
                                  const at::Tensor& stats, int64_t pad, int64_t step) {
  const SmoothShape s = check_smooth(params, weight, pad, step);
  const std::pair<const at::Tensor*, const char*> maps[] = {{&grad, "grad"}, {&out, "out"}};
  for (const auto& [t, name] : maps) {
    check_float(*t, name);
    TORCH_CHECK(t->dim() == 3 && t->size(0) == s.n && t->size(1) == s.h && t->size(2) == s.w,
                "pyxai: '", name, "' must have shape [", s.n, ", ", s.h, ", ", s.w, "], got ",
                t->sizes());
    check_same_dtype(*t, params, name, "params");
    check_same_device(*t, params, name, "params");
  }
  check_float(stats, "stats");
  TORCH_CHECK(stats.dim() == 4 && stats.size(0) == s.n && stats.size(1) == 2 &&
                  stats.size(2) == s.h && stats.size(3) == s.w,
              "pyxai: 'stats' must have shape [", s.n, ", 2, ", s.h, ", ", s.w, "], got ",
              stats.sizes());
  check_same_dtype(stats, params, "stats", "params");
  check_same_device(stats, params, "stats", "params");
  return s;
}

namespace {

constexpr int64_t kBlockRows = 16;    // rows per backward task
constexpr int64_t kFwdBlockRows = 8;  // rows per forward task
constexpr int64_t kLanes = 16;      // pixels of a row computed together (one AVX-512 vector)

// The taps of a chunk that read the grid: rows [ky0, ky1) x columns [kx0, kx1) of the t x t taps.
// Every other tap reads the zero padding in all the chunk's lanes (a = 0 exactly), so its
// exponential is exp(0 - max), the same for all of them: computed once, added to the
// denominator in tap order; its term of the output is +0 (skipped: adding +0 changes no bits)
// and its gradient lands in the padding (dropped). Around a 64 x 64 image (step 7, sigma 21)
// 63 % of the taps are such padding taps.
struct TapBox {
  int64_t t, ky0, ky1, kx0, kx1;
  bool full() const { return ky0 == 0 && ky1 == t && kx0 == 0 && kx1 == t; }
  bool inside(int64_t ky, int64_t kx) const {
    return ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1;
  }
};

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

// The chunk loops are built three times and picked at load time by CPU features (GCC's
// "arch=x86-64-vN" clones test features, so they are taken on AMD too, unlike CPU-model clones
// such as "arch=haswell"): x86-64-v4 (AVX-512: one register a chunk), x86-64-v3 (AVX2 + FMA: two)
// and the baseline (SSE2: four). The v4 and v3 builds fuse multiply-adds (fp-contract=fast: the
// exponential's polynomial and range reduction, the gradient's products). Measured on a 2-core
// AMD EPYC (24 masks of 64 x 64, forward / backward, best of 30): 8 lanes unfused (AVX2) 18.8 /
// 19.0 ms on 1 thread; fused 14.0 / 14.5 ms; 16 lanes fused (AVX-512) 10.8-14.1 / 12.1-12.5 ms
// (2 threads: 7.3 / 7.2 -> 5.5-7.0 / 6.1-6.7 ms). The builds' last bits differ (within the
// reference's float tolerance); each is deterministic.
#if defined(__x86_64__) && defined(__GNUC__) && defined(__ELF__)
#define PYXAI_ROW_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"),   \
                 optimize("fp-contract=fast")))
#else
#define PYXAI_ROW_CLONES
#endif

// Scratch of one task. A row is computed kLanes pixels at a time, every pass over the K taps of
// a chunk reading and writing [K][kLanes] buffers that stay in L1:
//   v [K][wp]: tap values of the mid row v_r (shared by its rows), wp = W rounded up to kLanes;
//   a [K][kLanes] (forward): the chunk's weighted taps;
//   m, sum, mx [wp] (forward): the row's output, denominators and maxima;
//   g [K][kLanes] (backward): a chunk's taps' gradients summed over the rows of one mid row.
template <typename T>
struct Row {
  int64_t wp;
  std::vector<T> v, a, m, sum, mx, g;
  const T* v_grid = nullptr;  // the padded grid and mid row v holds
  int64_t v_r = -1;
  Row(const SmoothShape& s, bool backward)
      : wp(ceil_div(s.w, kLanes) * kLanes), v(s.taps * s.taps * wp, T(0)),
        a(backward ? 0 : s.taps * s.taps * kLanes), m(backward ? 0 : wp),
        sum(m.size()), mx(m.size()), g(backward ? s.taps * s.taps * kLanes : 0, T(0)) {}
};

// The pooled mask of kLanes pixels: w, v the first pixel's weight and tap value of tap 0 (tap k
// at + k * kLanes, + k * v_stride); fills a (the taps of box) and writes m, sum, mxo. Per pixel:
// max_k 20 a_k, e_k = exp(20 a_k - max), sum_k e_k and sum_k a_k e_k in tap order in one pass,
// m = (sum_k a_k e_k) / sum (the reference divides each e_k by the sum first: the last bits
// differ).
template <typename T>
PYXAI_ROW_CLONES void pool_chunk(const TapBox& box, const T* w, const T* v, int64_t v_stride,
                                 T* a, T* m, T* sum, T* mxo) {
  const T cold = static_cast<T>(kColdness);
  const int64_t t = box.t;
  T mx[kLanes], e0[kLanes], sm[kLanes], out[kLanes];
  for (int64_t j = 0; j < kLanes; ++j) mx[j] = -std::numeric_limits<T>::infinity();
  for (int64_t ky = box.ky0; ky < box.ky1; ++ky)
    for (int64_t k = ky * t + box.kx0; k < ky * t + box.kx1; ++k) {
      const T* wk = w + k * kLanes;
      const T* vk = v + k * v_stride;
      T* ak = a + k * kLanes;
      for (int64_t j = 0; j < kLanes; ++j) {
        ak[j] = wk[j] * vk[j];
        mx[j] = std::max(mx[j], cold * ak[j]);
      }
    }
  if (!box.full())
    for (int64_t j = 0; j < kLanes; ++j) mx[j] = std::max(mx[j], cold * T(0));
  for (int64_t j = 0; j < kLanes; ++j) {
    e0[j] = exp_neg(cold * T(0) - mx[j]);
    sm[j] = T(0);
    out[j] = T(0);
  }
  for (int64_t ky = 0; ky < t; ++ky)
    for (int64_t kx = 0; kx < t; ++kx) {
      const int64_t k = ky * t + kx;
      if (!box.inside(ky, kx)) {  // a = 0: its output term is +0
        for (int64_t j = 0; j < kLanes; ++j) sm[j] += e0[j];
        continue;
      }
      const T* ak = a + k * kLanes;
      for (int64_t j = 0; j < kLanes; ++j) {
        const T ek = exp_neg(cold * ak[j] - mx[j]);
        sm[j] += ek;
        out[j] += ak[j] * ek;
      }
    }
  for (int64_t j = 0; j < kLanes; ++j) {
    m[j] = out[j] / sm[j];
    sum[j] = sm[j];
    mxo[j] = mx[j];
  }
}

// The gradients of the chunk's taps in box added to g (tap k at + k * g_stride), from the
// forward's per-pixel m, sum and max mx: a_k = w_k v_k, e_k = exp(20 a_k - mx) (the forward's
// exponentials, by the same operations) and d out / d a_k = ((a - m) * 20 + 1) * e / sum, times
// grad * weight; grad / sum is taken once per pixel (the reference divides per tap: the last
// bits differ). Taps outside box read the padding: their gradients are dropped.
template <typename T>
PYXAI_ROW_CLONES void grad_taps(const TapBox& box, const T* w, const T* v, int64_t v_stride,
                                const T* m, const T* sum, const T* mx, const T* grad, T* g,
                                int64_t g_stride) {
  const T cold = static_cast<T>(kColdness);
  T q[kLanes];
  for (int64_t j = 0; j < kLanes; ++j) q[j] = grad[j] / sum[j];
  for (int64_t ky = box.ky0; ky < box.ky1; ++ky)
    for (int64_t k = ky * box.t + box.kx0; k < ky * box.t + box.kx1; ++k) {
      const T* wk = w + k * kLanes;
      const T* vk = v + k * v_stride;
      T* gk = g + k * g_stride;
      for (int64_t j = 0; j < kLanes; ++j) {
        const T a = wk[j] * vk[j];
        const T e = exp_neg(cold * a - mx[j]);
        gk[j] += ((a - m[j]) * cold + T(1)) * e * q[j] * wk[j];
      }
    }
}

#if defined(__GNUC__)
// float chunks as GCC vector extensions (one AVX-512 register, two AVX2 or four SSE2 ones):
// the same IEEE operations, lane by lane, as the scalar template above (fused alike).
typedef float FV __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t IV __attribute__((vector_size(kLanes * sizeof(int32_t))));
static_assert(sizeof(FV) == kLanes * sizeof(float), "one float per lane");

inline FV loadv(const float* p) {
  FV v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void storev(float* p, FV v) { std::memcpy(p, &v, sizeof(v)); }
inline FV splatv(float x) { return FV{} + x; }
inline IV splativ(int32_t x) { return IV{} + x; }

// exp_neg lane by lane (the scalar function's operations in its order).
inline __attribute__((always_inline)) FV exp_negv(FV x) {
  const IV lo = splativ(-127);
  const FV fx = x * 1.44269504088896341f + 0.5f;
  IV i = __builtin_convertvector(fx, IV);  // truncation (x86: INT_MIN for huge or NaN x)
  i = i < lo ? lo : i;
  i += __builtin_convertvector(i, FV) > fx;  // floor: a true comparison is -1
  const IV keep = i > lo;                    // -1 where the result does not underflow
  i = i < lo ? lo : i;
  FV y = exp_poly(x, __builtin_convertvector(i, FV));
  y *= reinterpret_cast<FV>((i + 127) << 23);
  return reinterpret_cast<FV>(reinterpret_cast<IV>(y) & keep);
}

template <>
PYXAI_ROW_CLONES void pool_chunk<float>(const TapBox& box, const float* w, const float* v,
                                        int64_t v_stride, float* a, float* m, float* sum,
                                        float* mxo) {
  const float cold = kColdness;
  const int64_t t = box.t;
  FV mx = splatv(-std::numeric_limits<float>::infinity());
  for (int64_t ky = box.ky0; ky < box.ky1; ++ky)
    for (int64_t k = ky * t + box.kx0; k < ky * t + box.kx1; ++k) {
      const FV ak = loadv(w + k * kLanes) * loadv(v + k * v_stride);
      storev(a + k * kLanes, ak);
      const FV c = cold * ak;
      mx = mx < c ? c : mx;  // std::max(mx, c)
    }
  const FV zero = cold * FV{};  // 20 a of a padding tap
  if (!box.full()) mx = mx < zero ? zero : mx;
  const FV e0 = exp_negv(zero - mx);
  FV sm = FV{}, out = FV{};
  for (int64_t ky = 0; ky < t; ++ky) {
    if (ky < box.ky0 || ky >= box.ky1) {
      for (int64_t kx = 0; kx < t; ++kx) sm += e0;
      continue;
    }
    for (int64_t kx = 0; kx < box.kx0; ++kx) sm += e0;
    for (int64_t k = ky * t + box.kx0; k < ky * t + box.kx1; ++k) {
      const FV ak = loadv(a + k * kLanes);
      const FV ek = exp_negv(cold * ak - mx);
      sm += ek;
      out += ak * ek;
    }
    for (int64_t kx = box.kx1; kx < t; ++kx) sm += e0;
  }
  storev(m, out / sm);
  storev(sum, sm);
  storev(mxo, mx);
}

template <>
PYXAI_ROW_CLONES void grad_taps<float>(const TapBox& box, const float* w, const float* v,
                                       int64_t v_stride, const float* m, const float* sum,
                                       const float* mx, const float* grad, float* g,
                                       int64_t g_stride) {
  const float cold = kColdness;
  const FV mv = loadv(m), xv = loadv(mx), qv = loadv(grad) / loadv(sum);
  for (int64_t ky = box.ky0; ky < box.ky1; ++ky)
    for (int64_t k = ky * box.t + box.kx0; k < ky * box.t + box.kx1; ++k) {
      const FV wk = loadv(w + k * kLanes);
      const FV a = wk * loadv(v + k * v_stride);
      const FV e = exp_negv(cold * a - xv);
      const FV t = ((a - mv) * cold + 1.0f) * e * qv * wk;
      storev(g + k * g_stride, loadv(g + k * g_stride) + t);
    }
}
#endif

// Gathers the tap values of mid row r of padded grid pg into row.v (once per mid row).
template <typename T>
void gather_taps(const SmoothShape& s, const T* pg, const int64_t* cols, int64_t r, Row<T>& row) {
  if (row.v_r == r && row.v_grid == pg) return;
  const int64_t pw = s.gw + 2 * s.pad;
  for (int64_t ky = 0; ky < s.taps; ++ky) {
    const T* prow = pg + (r + ky) * pw;
    for (int64_t kx = 0; kx < s.taps; ++kx) {
      T* vk = row.v.data() + (ky * s.taps + kx) * row.wp;
      for (int64_t x = 0; x < s.w; ++x) vk[x] = prow[cols[x] + kx];
    }
  }
  row.v_r = r;
  row.v_grid = pg;
}

// The weights packed chunk by chunk, [H][ceil(W / kLanes)][K][kLanes] (zero padded past W): the
// K x kLanes weights of one chunk are contiguous.
template <typename T>
std::vector<T> packed_weights(const SmoothShape& s, const T* wt) {
  const int64_t kk = s.taps * s.taps, nc = ceil_div(s.w, kLanes);
  std::vector<T> out(s.h * nc * kk * kLanes, T(0));
  at::parallel_for(0, s.h, 1, [&](int64_t begin, int64_t end) {
    for (int64_t y = begin; y < end; ++y)
      for (int64_t k = 0; k < kk; ++k) {
        const T* src = wt + (k * s.h + y) * s.w;
        for (int64_t x = 0; x < s.w; ++x)
          out[((y * nc + x / kLanes) * kk + k) * kLanes + x % kLanes] = src[x];
      }
  });
  return out;
}

// The taps of the chunk of row y starting at column x0 that read the grid (mid row r).
inline TapBox chunk_box(const SmoothShape& s, const int64_t* cols, int64_t r, int64_t x0) {
  const int64_t len = std::min(kLanes, s.w - x0);
  // padded-grid row r + ky (column cols[x] + kx) reads the grid when in [pad, pad + g)
  TapBox box{s.taps, std::max<int64_t>(0, s.pad - r), std::min(s.taps, s.pad + s.gh - r),
             std::max<int64_t>(0, s.pad - cols[x0 + len - 1]),
             std::min(s.taps, s.pad + s.gw - cols[x0])};
  if (box.ky1 <= box.ky0 || box.kx1 <= box.kx0) box = TapBox{s.taps, 0, 0, 0, 0};
  return box;
}

// Row y of one mask into row.m / row.sum / row.mx (the first W entries). pg: the mask's padded
// grid; wt: packed_weights.
template <typename T>
void compute_row(const SmoothShape& s, const T* pg, const T* wt, const int64_t* cols, int64_t y,
                 Row<T>& row) {
  const int64_t kk = s.taps * s.taps, nc = ceil_div(s.w, kLanes);
  const int64_t r = nearest_cell(y, s.mh, s.uh);
  gather_taps(s, pg, cols, r, row);
  for (int64_t x0 = 0; x0 < s.w; x0 += kLanes)
    pool_chunk(chunk_box(s, cols, r, x0), wt + (y * nc + x0 / kLanes) * kk * kLanes,
               row.v.data() + x0, row.wp, row.a.data(), row.m.data() + x0,
               row.sum.data() + x0, row.mx.data() + x0);
}

// The gradient of rows [y0, y1) of one mask, which read the same mid row, added to acc (the
// mask's padded-grid gradient [gh + 2 pad, gw + 2 pad]). grad, m, sum, mx: the output gradient,
// output and forward stats of row y0 (row y at + (y - y0) * W). Chunk by chunk, the taps'
// gradients are summed over the rows in row.g ([K][kLanes], in L1), then added to acc (tap
// order, then lane order; only the taps of the chunk's box: the others read the padding).
template <typename T>
void grad_rows(const SmoothShape& s, const T* pg, const T* wt, const int64_t* cols, int64_t y0,
               int64_t y1, const T* grad, const T* m, const T* sum, const T* mx, Row<T>& row,
               T* acc) {
  const int64_t kk = s.taps * s.taps, nc = ceil_div(s.w, kLanes), pw = s.gw + 2 * s.pad;
  const int64_t r = nearest_cell(y0, s.mh, s.uh);
  gather_taps(s, pg, cols, r, row);
  // lanes past W: zero gradient, unit denominator (their sums are never read)
  T gp[kLanes], mp[kLanes], sp[kLanes], xp[kLanes];
  for (int64_t x0 = 0; x0 < s.w; x0 += kLanes) {
    const int64_t len = std::min(kLanes, s.w - x0);
    const TapBox box = chunk_box(s, cols, r, x0);
    if (box.ky1 <= box.ky0) continue;  // every tap reads the padding
    for (int64_t ky = box.ky0; ky < box.ky1; ++ky)
      std::fill(row.g.data() + (ky * s.taps + box.kx0) * kLanes,
                row.g.data() + (ky * s.taps + box.kx1) * kLanes, T(0));
    for (int64_t y = y0; y < y1; ++y) {
      const int64_t at = (y - y0) * s.w + x0;
      for (int64_t j = 0; j < kLanes; ++j) {
        const bool in = j < len;
        gp[j] = in ? grad[at + j] : T(0);
        mp[j] = in ? m[at + j] : T(0);
        sp[j] = in ? sum[at + j] : T(1);
        xp[j] = in ? mx[at + j] : T(0);
      }
      grad_taps(box, wt + (y * nc + x0 / kLanes) * kk * kLanes, row.v.data() + x0, row.wp, mp,
                sp, xp, gp, row.g.data(), kLanes);
    }
    for (int64_t ky = box.ky0; ky < box.ky1; ++ky) {
      T* arow = acc + (r + ky) * pw;
      for (int64_t kx = box.kx0; kx < box.kx1; ++kx) {
        const T* gk = row.g.data() + (ky * s.taps + kx) * kLanes;
        for (int64_t j = 0; j < len; ++j) arow[cols[x0 + j] + kx] += gk[j];
      }
    }
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> smooth_masks_cpu(const at::Tensor& params_,
                                                     const at::Tensor& weight_, int64_t pad,
                                                     int64_t step) {
  const SmoothShape s = check_smooth(params_, weight_, pad, step);
  auto params = params_.contiguous();
  auto weight = weight_.contiguous();
  auto out = at::empty({s.n, s.h, s.w}, params.options());
  auto stats = at::empty({s.n, 2, s.h, s.w}, params.options());
  if (s.n == 0) return {out, stats};
  const auto cols = column_cells(s);
  const int64_t pgsize = (s.gh + 2 * s.pad) * (s.gw + 2 * s.pad), plane = s.h * s.w;
  AT_DISPATCH_FLOATING_TYPES(params.scalar_type(), "smooth_masks_cpu", [&] {
    const auto pg = padded_grids(s, params.data_ptr<scalar_t>());
    const auto packed = packed_weights(s, weight.data_ptr<scalar_t>());
    const scalar_t* wt = packed.data();
    scalar_t* o = out.data_ptr<scalar_t>();
    scalar_t* st = stats.data_ptr<scalar_t>();
    // tasks (block of rows, mask), block-major: a thread runs one block for mask after mask,
    // so the block's packed weights stay in cache instead of streaming in once per mask
    const int64_t blocks = ceil_div(s.h, kFwdBlockRows);
    at::parallel_for(0, blocks * s.n, 1, [&](int64_t begin, int64_t end) {
      Row<scalar_t> row(s, false);
      for (int64_t i = begin; i < end; ++i) {
        const int64_t n = i % s.n, y0 = (i / s.n) * kFwdBlockRows;
        for (int64_t y = y0; y < std::min(s.h, y0 + kFwdBlockRows); ++y) {
          compute_row(s, pg.data() + n * pgsize, wt, cols.data(), y, row);
          std::copy(row.m.begin(), row.m.begin() + s.w, o + n * plane + y * s.w);
          std::copy(row.mx.begin(), row.mx.begin() + s.w, st + 2 * n * plane + y * s.w);
          std::copy(row.sum.begin(), row.sum.begin() + s.w, st + (2 * n + 1) * plane + y * s.w);
        }
      }
    });
  });
  return {out, stats};
}

at::Tensor smooth_masks_backward_cpu(const at::Tensor& grad_, const at::Tensor& params_,
                                     const at::Tensor& weight_, const at::Tensor& out_,
                                     const at::Tensor& stats_, int64_t pad, int64_t step) {
  const SmoothShape s = check_smooth_backward(grad_, params_, weight_, out_, stats_, pad, step);
  auto grad = grad_.contiguous();
  auto fwd = out_.contiguous();
  auto stats = stats_.contiguous();
  auto params = params_.contiguous();
  auto weight = weight_.contiguous();
  auto out = at::empty({s.n, s.gh, s.gw}, params.options());
  if (s.n == 0) return out;
  const auto cols = column_cells(s);
  const int64_t ph = s.gh + 2 * s.pad, pw = s.gw + 2 * s.pad;
  AT_DISPATCH_FLOATING_TYPES(params.scalar_type(), "smooth_masks_backward_cpu", [&] {
    const auto pg = padded_grids(s, params.data_ptr<scalar_t>());
    const auto packed = packed_weights(s, weight.data_ptr<scalar_t>());
    const scalar_t* wt = packed.data();
    const scalar_t* gr = grad.data_ptr<scalar_t>();
    const scalar_t* fm = fwd.data_ptr<scalar_t>();
    const scalar_t* st = stats.data_ptr<scalar_t>();
    const int64_t plane = s.h * s.w;
    scalar_t* o = out.data_ptr<scalar_t>();
    // Row blocks of kBlockRows rows (a count that does not depend on the thread count) each sum
    // into their own padded grid; the blocks are then added in order: the same bits on any
    // number of threads. Tasks run block-major (as the forward's) for the weights' sake.
    const int64_t blocks = ceil_div(s.h, kBlockRows), cells = ph * pw;
    std::vector<scalar_t> part(s.n * blocks * cells, scalar_t(0));
    at::parallel_for(0, s.n * blocks, 1, [&](int64_t begin, int64_t end) {
      Row<scalar_t> row(s, true);
      for (int64_t i = begin; i < end; ++i) {
        const int64_t n = i % s.n, b = i / s.n, y0 = b * kBlockRows;
        const int64_t y1 = std::min(s.h, y0 + kBlockRows);
        scalar_t* acc = part.data() + (n * blocks + b) * cells;
        for (int64_t y = y0; y < y1;) {  // runs of rows that read the same mid row
          const int64_t r = nearest_cell(y, s.mh, s.uh);
          int64_t stop = y + 1;
          while (stop < y1 && nearest_cell(stop, s.mh, s.uh) == r) ++stop;
          const int64_t at = n * plane + y * s.w;
          grad_rows(s, pg.data() + n * cells, wt, cols.data(), y, stop, gr + at, fm + at,
                    st + (2 * n + 1) * plane + y * s.w, st + 2 * n * plane + y * s.w, row, acc);
          y = stop;
        }
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
