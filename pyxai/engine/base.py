"""The explainer base every pyxai explainer shares (Captum's ``Attribution`` shape).

An explainer is configured once (model and hyper-parameters in the constructor) and then called
any number of times, from any number of threads: ``attribute(inputs, target=None, **kwargs)``
keeps no state between calls and never writes into the model (it works on a
:class:`pyxai.engine.view.ModelView` where it needs hooks or rewritten layers). Explainers pickle
when their model does.
"""

from __future__ import annotations

from typing import Any, Callable

import torch


class Explainer:
    """Base class: ``Explainer(forward_func).attribute(inputs, target=None, **kwargs)``.

    Args:
        forward_func: the model (``nn.Module``) or any callable mapping inputs to outputs.
    """

    def __init__(self, forward_func: Callable[..., Any]) -> None:
        self.forward_func = forward_func

    def attribute(self, inputs: torch.Tensor, target: Any = None, **kwargs: Any) -> Any:
        """Attributions for ``inputs`` (see each explainer for shapes)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        model = type(self.forward_func).__name__
        return f"{type(self).__name__}({model})"
