// The pyxai op library: one schema per op. Kernels register per device in <family>/cpu.cpp and
// <family>/cuda_glue.cpp; fake (meta) kernels are registered in Python (pyxai/ops/_fake.py).
#include <torch/library.h>

TORCH_LIBRARY(pyxai, m) {
  // masks: grids [N, gh, gw] upsampled to `canvas`, cropped at offsets [N, 2] to the output size.
  m.def("upsample_masks(Tensor grids, Tensor offsets, int[2] size, int[2] canvas, str mode)"
        " -> Tensor");
  m.def("upsample_blend(Tensor x, Tensor grids, Tensor offsets, Tensor baseline, int[2] canvas,"
        " str mode) -> Tensor");
  m.def("weighted_mask_sum(Tensor grids, Tensor offsets, Tensor weights, int[2] size,"
        " int[2] canvas, str mode) -> Tensor");
  // adjoint of upsample_masks (its backward w.r.t. grids): grad [N, H, W] -> [N, grid[0], grid[1]].
  m.def("upsample_masks_backward(Tensor grad, Tensor offsets, int[2] grid, int[2] canvas,"
        " str mode) -> Tensor");
  // smooth_masks: TorchRay's smooth mask generator fused (csrc/smooth_masks/smooth_masks.h):
  // params [N, gh, gw], weight [t * t, H, W] -> (out [N, H, W], stats [N, 2, H, W]: each pixel's
  // softmax max and denominator); its backward, from out and stats -> [N, gh, gw].
  m.def("smooth_masks(Tensor params, Tensor weight, int pad, int step) -> (Tensor, Tensor)");
  m.def("smooth_masks_backward(Tensor grad, Tensor params, Tensor weight, Tensor out,"
        " Tensor stats, int pad, int step) -> Tensor");
  // sobol: rows [first, first + count) of the replicated design [A; B; C_0..C_{d-1}] (never stored);
  // total- and first-order indices [2, d, P] from the outputs yA [N, P], yB [N, P], yC [d, N, P].
  m.def("sobol_design(Tensor A, Tensor B, int first, int count) -> Tensor");
  m.def("sobol_indices(Tensor yA, Tensor yB, Tensor yC, str estimator) -> Tensor");
  // occlusion: Captum sliding windows (first dim fastest, cropped last window) over rows x[B, ...].
  m.def("occlusion_perturb(Tensor x, Tensor baseline, int[] window, int[] strides, int first,"
        " int count) -> Tensor");
  m.def("occlusion_accumulate(Tensor drops, int[] shape, int[] window, int[] strides) -> Tensor");
  // metrics: deletion/insertion canvases, rows [first, first + count) of step-major items
  // (row s * B + b: image b with its pixels of rank < s * step_px taken from finish, else start).
  m.def("reveal_by_rank(Tensor start, Tensor finish, Tensor ranks, int first, int count,"
        " int step_px) -> Tensor");
  // lrp: the fused elementwise steps of a layer's relevance backward (layouts in csrc/lrp/lrp.h;
  // the rules are declared in pyxai/lrp/rules.py and run by pyxai/ops/lrp.py on every backend).
  m.def("lrp_split_sign(Tensor x, int groups) -> Tensor");
  m.def("lrp_stab_div(Tensor grad, Tensor z, Tensor? z0, int groups, float[] coef, int[] mask,"
        " float eps) -> Tensor");
  m.def("lrp_combine(Tensor xs, Tensor g, int groups, float[] coef) -> Tensor");
}
