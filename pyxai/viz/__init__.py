"""``pyxai.viz``: pictures of attributions — tensors in, matplotlib figures or uint8 arrays out.

    from pyxai import viz
    rgb = viz.show_cam_on_image(img_hwc, cam_hw, use_rgb=True)       # as pytorch-grad-cam
    fig, ax = viz.visualize_image_attr(attr, image, "blended_heat_map", sign="all", use_pyplot=False)
    px = viz.imgify(relevance, symmetric=True, cmap="coldnhot")      # as zennit.image.imgify
    fig = viz.grid(images, {"gradcam": cams, "lrp": rel}, labels=["cat 0.91", "dog 0.80"])
    frame = viz.frame_overlay(frame_chw, map_hw, text="gradcam  cat 0.91")   # ndarray[H, W, 3] uint8

NumPy appears only at the display boundary (the arrays and figures returned). matplotlib is needed
by the figure functions; OpenCV only for ``show_cam_on_image`` with an OpenCV colour-map code.
"""

from pyxai.viz.cam_image import COLORMAP_JET, show_cam_on_image
from pyxai.viz.captum_figures import normalize_attr, visualize_image_attr, visualize_image_attr_multiple
from pyxai.viz.colormaps import SIGNED_MAPS, colorize, imgify, lookup_table, palette
from pyxai.viz.grid import figure_png, grid
from pyxai.viz.overlay import frame_overlay, label_frame, overlay, reduce_map, scale_map, to_uint8

__all__ = ["show_cam_on_image", "COLORMAP_JET", "visualize_image_attr", "visualize_image_attr_multiple",
           "normalize_attr", "imgify", "palette", "lookup_table", "colorize", "SIGNED_MAPS", "grid",
           "figure_png", "overlay", "frame_overlay", "label_frame", "reduce_map", "scale_map",
           "to_uint8"]
