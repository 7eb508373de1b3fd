// masks family, CPU kernels: upsample_masks, upsample_blend, weighted_mask_sum.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "common/checks.h"
#include "masks/masks.h"

namespace pyxai {
namespace masks {

int parse_mode(const std::string& mode) {
  if (mode == "nearest") return kNearest;
  if (mode == "bilinear") return kBilinear;
  if (mode == "bilinear_reflect") return kBilinearReflect;
  if (mode == "bilinear_align_corners") return kBilinearAlignCorners;
  TORCH_CHECK(false, "pyxai: unknown mask mode '", mode,
              "' (expected nearest, bilinear, bilinear_reflect or bilinear_align_corners)");
}

namespace {

// offsets [N, 2] int64 on the device of `like` (N = like.size(0)).
void check_offsets(const at::Tensor& offsets, const at::Tensor& like, const char* like_name) {
  check_dim(offsets, 2, "offsets");
  TORCH_CHECK(offsets.scalar_type() == at::kLong, "pyxai: 'offsets' must be int64");
  TORCH_CHECK(offsets.size(0) == like.size(0) && offsets.size(1) == 2,
              "pyxai: 'offsets' must have shape [N, 2] with N = ", like_name, ".size(0)");
  check_same_device(like, offsets, like_name, "offsets");
}

// The shape of n masks of grid (gh, gw), canvas and output size checked (all sizes positive).
MaskShape mask_shape(int64_t n, int64_t gh, int64_t gw, c10::IntArrayRef size,
                     c10::IntArrayRef canvas, const std::string& mode) {
  TORCH_CHECK(size.size() == 2 && canvas.size() == 2, "pyxai: 'size' and 'canvas' take 2 ints");
  MaskShape s{n, gh, gw, canvas[0], canvas[1], size[0], size[1], parse_mode(mode)};
  TORCH_CHECK(s.gh > 0 && s.gw > 0, "pyxai: 'grids' must have a non-empty grid");
  TORCH_CHECK(s.h > 0 && s.w > 0, "pyxai: 'size' must be positive");
  TORCH_CHECK(s.uh >= s.h && s.uw >= s.w, "pyxai: 'canvas' ", canvas, " is smaller than 'size' ",
              size);
  return s;
}

}  // namespace

MaskShape check_grids(const at::Tensor& grids, const at::Tensor& offsets, c10::IntArrayRef size,
                      c10::IntArrayRef canvas, const std::string& mode) {
  check_float(grids, "grids");
  check_dim(grids, 3, "grids");
  check_offsets(offsets, grids, "grids");
  return mask_shape(grids.size(0), grids.size(1), grids.size(2), size, canvas, mode);
}

MaskShape check_masks_backward(const at::Tensor& grad, const at::Tensor& offsets,
                               c10::IntArrayRef grid, c10::IntArrayRef canvas,
                               const std::string& mode) {
  check_float(grad, "grad");
  check_dim(grad, 3, "grad");
  check_offsets(offsets, grad, "grad");
  TORCH_CHECK(grid.size() == 2, "pyxai: 'grid' takes 2 ints");
  return mask_shape(grad.size(0), grid[0], grid[1], {grad.size(1), grad.size(2)}, canvas, mode);
}

MaskShape check_blend(const at::Tensor& x, const at::Tensor& grids, const at::Tensor& offsets,
                      const at::Tensor& baseline, c10::IntArrayRef canvas, const std::string& mode) {
  check_float(x, "x");
  check_dim(x, 4, "x");
  TORCH_CHECK(baseline.sizes() == x.sizes(), "pyxai: 'baseline' must have the shape of 'x'");
  check_same_dtype(x, grids, "x", "grids");
  check_same_dtype(x, baseline, "x", "baseline");
  check_same_device(x, grids, "x", "grids");
  check_same_device(x, baseline, "x", "baseline");
  return check_grids(grids, offsets, {x.size(2), x.size(3)}, canvas, mode);
}

MaskShape check_weighted_sum(const at::Tensor& grids, const at::Tensor& offsets,
                             const at::Tensor& weights, c10::IntArrayRef size,
                             c10::IntArrayRef canvas, const std::string& mode) {
  const MaskShape s = check_grids(grids, offsets, size, canvas, mode);
  check_dim(weights, 2, "weights");
  TORCH_CHECK(weights.size(0) == s.n, "pyxai: 'weights' must have shape [N, K], N = ", s.n);
  check_same_dtype(grids, weights, "grids", "weights");
  check_same_device(grids, weights, "grids", "weights");
  return s;
}

namespace {

// Row/column lookup tables over the whole canvas (shared by every mask of the same grid size).
std::vector<SourceIndex> axis_table(int64_t in, int64_t out, int mode) {
  std::vector<SourceIndex> t(out);
  for (int64_t i = 0; i < out; ++i) t[i] = source_index(i, in, out, mode);
  return t;
}

inline int64_t clamp_offset(int64_t o, int64_t canvas, int64_t size) {
  return o < 0 ? 0 : (o > canvas - size ? canvas - size : o);
}

// One mask row: m[x] for x in [0, W).
template <typename T>
inline void mask_row(const MaskShape& s, const T* g, const SourceIndex& r, const SourceIndex* cols,
                     T* m) {
  for (int64_t x = 0; x < s.w; ++x) m[x] = blend4(g, s.gw, r, cols[x]);
}

}  // namespace

at::Tensor upsample_masks_cpu(const at::Tensor& grids_, const at::Tensor& offsets_,
                              c10::IntArrayRef size, c10::IntArrayRef canvas, std::string mode) {
  const MaskShape s = check_grids(grids_, offsets_, size, canvas, mode);
  auto grids = grids_.contiguous();
  auto offsets = offsets_.contiguous();
  auto out = at::empty({s.n, s.h, s.w}, grids.options());
  if (s.n == 0) return out;
  const auto rows = axis_table(s.gh, s.uh, s.mode);
  const auto cols = axis_table(s.gw, s.uw, s.mode);
  const int64_t* off = offsets.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(grids.scalar_type(), "upsample_masks_cpu", [&] {
    const scalar_t* g = grids.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, s.n * s.h, 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t n = i / s.h, y = i % s.h;
        const int64_t oy = clamp_offset(off[2 * n], s.uh, s.h);
        const int64_t ox = clamp_offset(off[2 * n + 1], s.uw, s.w);
        mask_row(s, g + n * s.gh * s.gw, rows[y + oy], cols.data() + ox, o + i * s.w);
      }
    });
  });
  return out;
}

at::Tensor upsample_blend_cpu(const at::Tensor& x_, const at::Tensor& grids_,
                              const at::Tensor& offsets_, const at::Tensor& baseline_,
                              c10::IntArrayRef canvas, std::string mode) {
  const MaskShape s = check_blend(x_, grids_, offsets_, baseline_, canvas, mode);
  auto x = x_.contiguous();
  auto base = baseline_.contiguous();
  auto grids = grids_.contiguous();
  auto offsets = offsets_.contiguous();
  const int64_t b = x.size(0), p = x.size(1), plane = s.h * s.w;
  auto out = at::empty({s.n * b, p, s.h, s.w}, x.options());
  if (out.numel() == 0) return out;
  const auto rows = axis_table(s.gh, s.uh, s.mode);
  const auto cols = axis_table(s.gw, s.uw, s.mode);
  const int64_t* off = offsets.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "upsample_blend_cpu", [&] {
    const scalar_t* g = grids.data_ptr<scalar_t>();
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* bp = base.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, s.n * s.h, 4, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> m(s.w);
      for (int64_t i = begin; i < end; ++i) {
        const int64_t n = i / s.h, y = i % s.h;
        const int64_t oy = clamp_offset(off[2 * n], s.uh, s.h);
        const int64_t ox = clamp_offset(off[2 * n + 1], s.uw, s.w);
        mask_row(s, g + n * s.gh * s.gw, rows[y + oy], cols.data() + ox, m.data());
        for (int64_t bp_i = 0; bp_i < b * p; ++bp_i) {
          const int64_t src = bp_i * plane + y * s.w;
          scalar_t* dst = o + (n * b * p + bp_i) * plane + y * s.w;
          for (int64_t xx = 0; xx < s.w; ++xx) {
            dst[xx] = xp[src + xx] * m[xx] + bp[src + xx] * (scalar_t(1) - m[xx]);
          }
        }
      }
    });
  });
  return out;
}

at::Tensor weighted_mask_sum_cpu(const at::Tensor& grids_, const at::Tensor& offsets_,
                                 const at::Tensor& weights_, c10::IntArrayRef size,
                                 c10::IntArrayRef canvas, std::string mode) {
  const MaskShape s = check_weighted_sum(grids_, offsets_, weights_, size, canvas, mode);
  auto grids = grids_.contiguous();
  auto offsets = offsets_.contiguous();
  auto weights = weights_.contiguous();
  const int64_t k = weights.size(1);
  auto out = at::zeros({k, s.h, s.w}, grids.options());
  if (s.n == 0 || k == 0) return out;
  const auto rows = axis_table(s.gh, s.uh, s.mode);
  const auto cols = axis_table(s.gw, s.uw, s.mode);
  const int64_t* off = offsets.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(grids.scalar_type(), "weighted_mask_sum_cpu", [&] {
    const scalar_t* g = grids.data_ptr<scalar_t>();
    const scalar_t* wt = weights.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    // Each task owns output rows y (for every k): no write conflicts, fixed summation order.
    at::parallel_for(0, s.h, 1, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> m(s.w);
      for (int64_t y = begin; y < end; ++y) {
        for (int64_t n = 0; n < s.n; ++n) {
          const int64_t oy = clamp_offset(off[2 * n], s.uh, s.h);
          const int64_t ox = clamp_offset(off[2 * n + 1], s.uw, s.w);
          mask_row(s, g + n * s.gh * s.gw, rows[y + oy], cols.data() + ox, m.data());
          for (int64_t kk = 0; kk < k; ++kk) {
            const scalar_t wnk = wt[n * k + kk];
            scalar_t* dst = o + (kk * s.h + y) * s.w;
            for (int64_t xx = 0; xx < s.w; ++xx) dst[xx] += wnk * m[xx];
          }
        }
      }
    });
  });
  return out;
}

at::Tensor upsample_masks_backward_cpu(const at::Tensor& grad_, const at::Tensor& offsets_,
                                       c10::IntArrayRef grid, c10::IntArrayRef canvas,
                                       std::string mode) {
  const MaskShape s = check_masks_backward(grad_, offsets_, grid, canvas, mode);
  auto grad = grad_.contiguous();
  auto offsets = offsets_.contiguous();
  auto out = at::zeros({s.n, s.gh, s.gw}, grad.options());
  if (s.n == 0) return out;
  const auto rows = axis_table(s.gh, s.uh, s.mode);
  const auto cols = axis_table(s.gw, s.uw, s.mode);
  const int64_t* off = offsets.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "upsample_masks_backward_cpu", [&] {
    const scalar_t* g = grad.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    // One task per mask: columns pass into a private [H, gw] buffer, then the rows pass into
    // out[n] (fixed order over x, then y; see masks.h).
    at::parallel_for(0, s.n, 1, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> work(s.h * s.gw);
      for (int64_t n = begin; n < end; ++n) {
        const int64_t oy = clamp_offset(off[2 * n], s.uh, s.h);
        const int64_t ox = clamp_offset(off[2 * n + 1], s.uw, s.w);
        std::fill(work.begin(), work.end(), scalar_t(0));
        for (int64_t y = 0; y < s.h; ++y) {
          const scalar_t* gr = g + (n * s.h + y) * s.w;
          scalar_t* t = work.data() + y * s.gw;
          for (int64_t x = 0; x < s.w; ++x) scatter_weighted(t, 1, cols[x + ox], gr[x]);
        }
        scalar_t* on = o + n * s.gh * s.gw;
        for (int64_t y = 0; y < s.h; ++y) {
          const scalar_t* t = work.data() + y * s.gw;
          for (int64_t j = 0; j < s.gw; ++j) scatter_weighted(on + j, s.gw, rows[y + oy], t[j]);
        }
      }
    });
  });
  return out;
}

}  // namespace masks
}  // namespace pyxai

TORCH_LIBRARY_IMPL(pyxai, CPU, m) {
  m.impl("upsample_masks", &pyxai::masks::upsample_masks_cpu);
  m.impl("upsample_blend", &pyxai::masks::upsample_blend_cpu);
  m.impl("weighted_mask_sum", &pyxai::masks::weighted_mask_sum_cpu);
  m.impl("upsample_masks_backward", &pyxai::masks::upsample_masks_backward_cpu);
}
