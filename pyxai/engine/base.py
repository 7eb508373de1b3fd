"""The explainer base every pyxai explainer shares (Captum's ``Attribution`` shape).

An explainer is configured once (model and hyper-parameters in the constructor) and then called
any number of times, from any number of threads: ``attribute(inputs, target=None, **kwargs)``
keeps no state between calls and never writes into the model (it works on a
:class:`pyxai.engine.view.ModelView` where it needs hooks or rewritten layers). Explainers pickle
when their model does.
"""

from __future__ import annotations

import inspect
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


class CaptumAttribution(Explainer):
    """Captum's attribution-method surface for pyxai's Captum drop-ins: ``multiplies_by_inputs``,
    ``has_convergence_delta()`` and ``attribute_future`` (Captum's asynchronous forward, which pyxai
    does not implement: it raises NotImplementedError, as Captum's gradient methods do).

    Subclasses set ``_multiply_by_inputs`` and ``_convergence_delta`` (class or instance
    attributes; both False by default; Captum's perturbation methods multiply by inputs).
    """

    _multiply_by_inputs: bool = False
    _convergence_delta: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give each ``attribute`` a ``__wrapped__`` (Captum's ``log_usage`` decorator has one:
        Captum's NoiseTunnel and GuidedGradCam call ``method.attribute.__wrapped__(method, ...)``),
        so pyxai's methods can be wrapped by Captum's classes."""
        super().__init_subclass__(**kwargs)
        fn = cls.__dict__.get("attribute")
        if fn is None or hasattr(fn, "__wrapped__"):
            return

        def unlogged(self: Any, *args: Any, **kw: Any) -> Any:
            return fn(self, *args, **kw)

        unlogged.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
        unlogged.__doc__ = fn.__doc__
        fn.__wrapped__ = unlogged

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return self._convergence_delta

    def attribute_future(self, *args: Any, **kwargs: Any) -> Any:
        """Not implemented in pyxai (Captum's ``Future``-returning forward functions)."""
        raise NotImplementedError(
            f"attribute_future is not implemented for {type(self).__name__} in pyxai; call "
            "attribute() (pyxai queues device work asynchronously without futures)"
        )
