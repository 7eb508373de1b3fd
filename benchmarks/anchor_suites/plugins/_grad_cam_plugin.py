"""pytest plugin (``-p _grad_cam_plugin``) for the pytorch-grad-cam anchor suite.

Loaded before the tests are imported: torchvision's builders drop ``weights`` / ``pretrained``
(random weights, nothing downloaded); with ``PYXAI_ANCHOR_MODE=pyxai`` every class name that
pyxai provides replaces pytorch-grad-cam's in ``pytorch_grad_cam`` and its ``model_targets``.
"""

from __future__ import annotations

import functools
import os

import torchvision


def _random_weights(builder):
    @functools.wraps(builder)
    def build(*args, **kwargs):
        kwargs.pop("weights", None)
        kwargs.pop("pretrained", None)
        return builder(*args, **kwargs)

    return build


for _name in torchvision.models.list_models(module=torchvision.models):
    if hasattr(torchvision.models, _name):
        setattr(torchvision.models, _name, _random_weights(getattr(torchvision.models, _name)))

if os.environ.get("PYXAI_ANCHOR_MODE") == "pyxai":
    import pytorch_grad_cam
    import pytorch_grad_cam.utils.model_targets as _targets

    import pyxai.cam
    import pyxai.cam.targets

    SWAPPED = []
    for _name in pyxai.cam.__all__:
        if hasattr(pytorch_grad_cam, _name):
            setattr(pytorch_grad_cam, _name, getattr(pyxai.cam, _name))
            SWAPPED.append(_name)
    for _name in pyxai.cam.targets.__all__:
        if hasattr(_targets, _name):
            setattr(_targets, _name, getattr(pyxai.cam.targets, _name))
            SWAPPED.append(_name)


def pytest_report_header(config):
    mode = os.environ.get("PYXAI_ANCHOR_MODE", "anchor")
    return f"pyxai anchor suite, mode {mode}: " + (", ".join(globals().get("SWAPPED", [])) or
                                                   "pytorch-grad-cam's own classes")
