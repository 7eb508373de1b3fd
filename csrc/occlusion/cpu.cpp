// occlusion family, CPU kernels: occlusion_perturb, occlusion_accumulate.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cstring>
#include <vector>

#include "occlusion/occlusion.h"

namespace pyxai {
namespace occlusion {

WindowShape make_shape(c10::IntArrayRef shape, c10::IntArrayRef window, c10::IntArrayRef strides) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  TORCH_CHECK(nd >= 1 && nd <= kMaxDims, "pyxai: occlusion supports 1 to ", kMaxDims,
              " dims per input row, got ", nd);
  TORCH_CHECK(static_cast<int64_t>(window.size()) == nd && static_cast<int64_t>(strides.size()) == nd,
              "pyxai: 'window' and 'strides' need one entry per input dim (", nd, ")");
  WindowShape s{};
  s.nd = static_cast<int>(nd);
  s.n_windows = 1;
  s.numel = 1;
  for (int64_t d = 0; d < nd; ++d) {
    TORCH_CHECK(shape[d] > 0, "pyxai: occlusion input dims must be positive, got ", shape);
    TORCH_CHECK(window[d] > 0 && window[d] <= shape[d], "pyxai: 'window' ", window,
                " must be positive and fit in the input row ", shape);
    TORCH_CHECK(strides[d] > 0, "pyxai: 'strides' must be positive, got ", strides);
    TORCH_CHECK(window[d] == shape[d] || strides[d] <= window[d], "pyxai: stride ", strides,
                " larger than window ", window, " would leave elements uncovered");
    s.shape[d] = shape[d];
    s.win[d] = window[d];
    s.stride[d] = strides[d];
    s.counts[d] = ceil_div(shape[d] - window[d], strides[d]) + 1;
    s.n_windows *= s.counts[d];
    s.numel *= shape[d];
  }
  return s;
}

namespace {

// Copies the window (cropped at the border) from src to dst, both one contiguous input row.
template <typename T>
void fill_window(const WindowShape& s, const int64_t* start, const T* src, T* dst) {
  int64_t ext[kMaxDims], step[kMaxDims], c[kMaxDims];
  int64_t lines = 1, st = 1;
  for (int d = s.nd - 1; d >= 0; --d) {
    const int64_t end = start[d] + s.win[d] < s.shape[d] ? start[d] + s.win[d] : s.shape[d];
    ext[d] = end - start[d];
    step[d] = st;
    st *= s.shape[d];
    if (d < s.nd - 1) lines *= ext[d];
    c[d] = 0;
  }
  const int last = s.nd - 1;
  const int64_t len = ext[last];
  for (int64_t l = 0; l < lines; ++l) {
    int64_t off = start[last];
    for (int d = 0; d < last; ++d) off += (start[d] + c[d]) * step[d];
    std::memcpy(dst + off, src + off, sizeof(T) * len);
    for (int d = last - 1; d >= 0; --d) {  // odometer over the leading dims, last fastest
      if (++c[d] < ext[d]) break;
      c[d] = 0;
    }
  }
}

at::Tensor occlusion_perturb_cpu(const at::Tensor& x_, const at::Tensor& baseline_,
                                 c10::IntArrayRef window, c10::IntArrayRef strides, int64_t first,
                                 int64_t count) {
  const WindowShape s = check_perturb(x_, baseline_, window, strides, first, count);
  auto x = x_.contiguous();
  auto base = baseline_.contiguous();
  const int64_t b = x.size(0);
  std::vector<int64_t> out_sizes(x.sizes().begin(), x.sizes().end());
  out_sizes[0] = count * b;
  auto out = at::empty(out_sizes, x.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "occlusion_perturb_cpu", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* bp = base.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    // rows of at least ~64K elements per task: small chunks stay on the calling thread
    const int64_t grain = (65536 + s.numel - 1) / s.numel;
    at::parallel_for(0, count * b, grain, [&](int64_t begin, int64_t end) {
      int64_t start[kMaxDims];
      for (int64_t row = begin; row < end; ++row) {
        const int64_t j = row / b, bi = row % b;
        scalar_t* dst = o + row * s.numel;
        std::memcpy(dst, xp + bi * s.numel, sizeof(scalar_t) * s.numel);
        window_start(s, first + j, start);
        // dst and the baseline row share the layout: copy the window region from the baseline
        fill_window(s, start, bp + bi * s.numel, dst);
      }
    });
  });
  return out;
}

at::Tensor occlusion_accumulate_cpu(const at::Tensor& drops_, c10::IntArrayRef shape,
                                    c10::IntArrayRef window, c10::IntArrayRef strides) {
  const WindowShape s = check_accumulate(drops_, shape, window, strides);
  auto drops = drops_.contiguous();
  const int64_t b = drops.size(1);
  std::vector<int64_t> out_sizes{b};
  out_sizes.insert(out_sizes.end(), shape.begin(), shape.end());
  auto out = at::empty(out_sizes, drops.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(drops.scalar_type(), "occlusion_accumulate_cpu", [&] {
    const scalar_t* dp = drops.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, b * s.numel, 8192, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        o[i] = covered_mean(s, dp, b, i / s.numel, i % s.numel);
      }
    });
  });
  return out;
}

}  // namespace
}  // namespace occlusion
}  // namespace pyxai

TORCH_LIBRARY_IMPL(pyxai, CPU, m) {
  m.impl("occlusion_perturb", &pyxai::occlusion::occlusion_perturb_cpu);
  m.impl("occlusion_accumulate", &pyxai::occlusion::occlusion_accumulate_cpu);
}
