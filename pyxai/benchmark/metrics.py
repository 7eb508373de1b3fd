"""Metric benchmarks: each pyxai metric vs its floor, vs the reference backend, vs Quantus.

Workload: 32 images of ``pyxai.data.shapes`` at 64x64, the demo CNN (probabilities: softmax
appended, as RISE scores), input x gradient attributions, CPU, batch size 32 for everyone (Quantus
runs one batch of 32 per perturbation, so all implementations do the same forwards).
quick=True: 8 images, fewer samples.

Floors: the bare forwards (and for the robustness metrics, the explainer calls) that a metric
cannot avoid, at the same batch size:

* deletion / insertion: ``(n_steps + 1) x B`` forwards (RISE: ``n_steps = ceil(64*64 / 224) = 19``);
* mu_fidelity: ``(n_samples + 1) x B`` forwards;
* max/avg sensitivity, local Lipschitz: the explainer on the B images and on the
  ``n_samples x B`` perturbed ones, in the chunks pyxai uses (64 rows per call, whole samples).

Streaming row: max_sensitivity with ``n_samples`` 10 and 100 (quick: 40) on the same images (peak
memory is the point: it must not grow with ``n_samples``), next to ``all at once`` — the pre-streaming
implementation (every noisy copy drawn, explained in one call and kept in float64) for n = 100.

Quantus counterparts (timed; parity checked where the definitions agree, with Quantus' draws
replaced by ours through its ``perturb_func``): MaxSensitivity, AvgSensitivity,
LocalLipschitzEstimate (``normalise=False`` on both sides: Quantus normalises by the batch max),
FaithfulnessCorrelation (pixel subsets of Quantus' own drawing: timed only). Quantus has no RISE
deletion/insertion (its PixelFlipping ranks pixel x channel elements in steps that must divide
H*W, so it does other work): those cases have no anchor.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from pyxai.benchmark.core import Case, demo_model, forward_floor, register


def _setup(n: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    from pyxai.data import shapes

    probs = torch.nn.Sequential(demo_model(), torch.nn.Softmax(1)).eval()
    x, _, _ = shapes(n, seed=7)
    with torch.no_grad():
        y = probs(x).argmax(1)
    attr = _GradX(probs).attribute(x, target=y)
    return probs, x, y, attr


class _GradX:
    """Input x gradient (the explainer of the robustness benchmarks)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.forward_func = model

    def attribute(self, inputs: torch.Tensor, target: Any = None) -> torch.Tensor:
        x = inputs.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            out = self.forward_func(x)
            t = out.argmax(1) if target is None else torch.as_tensor(target).reshape(-1)
            t = t.expand(x.shape[0])
            (g,) = torch.autograd.grad(out.gather(1, t[:, None]).sum(), x)
        return (g * inputs).detach()


def _explainer_calls(exp: _GradX, x: torch.Tensor, y: torch.Tensor, n: int) -> Callable:
    """The explainer on ``x`` and on ``n`` copies of it, in max_sensitivity's chunks."""
    from pyxai.engine.runner import auto_batch_size

    per_call = max(1, auto_batch_size(x[:1]) // x.shape[0])

    def run() -> None:
        exp.attribute(x, target=y)
        for s in range(0, n, per_call):
            k = min(per_call, n - s)
            exp.attribute(x.repeat(k, 1, 1, 1), target=y.repeat(k))

    return run


def _all_at_once_sensitivity(exp: _GradX, x: torch.Tensor, y: torch.Tensor, n: int,
                             radius: float) -> Callable:
    """max_sensitivity as it was before streaming: all noise, all copies, one call, float64."""
    from pyxai.metrics.robustness import draw_noise

    def run() -> torch.Tensor:
        b = x.shape[0]
        noise = draw_noise("uniform", (n, *x.shape), radius, 0)
        xp = (x[None] + noise.to(x.dtype)).reshape(n * b, *x.shape[1:])
        a0 = exp.attribute(x, target=y).reshape(b, -1).double()
        ap = exp.attribute(xp, target=y.repeat(n)).reshape(n, b, -1).double()
        return ((a0[None] - ap).norm(dim=-1) / a0.norm(dim=-1)[None]).amax(0).float()

    return run


def _quantus_robustness(name: str, model, exp: _GradX, x, y, noise: torch.Tensor | None,
                        **kw) -> Callable:
    def run() -> torch.Tensor:
        import quantus

        calls = iter(range(noise.shape[0])) if noise is not None else None

        def perturb(arr, indices, **_):
            return arr + noise[next(calls)].reshape(arr.shape).numpy()

        def explain_func(model, inputs, targets, **_):
            t = torch.as_tensor(np.asarray(targets)).long()
            return exp.attribute(torch.as_tensor(inputs).float(), target=t).numpy()

        extra = {"perturb_func": perturb} if noise is not None else {}
        metric = getattr(quantus, name)(disable_warnings=True, return_aggregate=False, **extra,
                                        **kw)
        out = metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None,
                     explain_func=explain_func, device="cpu", batch_size=x.shape[0])
        return torch.as_tensor(np.asarray(out))

    return run


@register("metrics")
def cases(quick: bool, device: str) -> list[Case]:
    from pyxai import metrics
    from pyxai.metrics.robustness import draw_noise

    if device != "cpu":
        raise ValueError("the metrics benchmark compares with Quantus on the CPU only")
    b = 4 if quick else 32
    n_mu = 8 if quick else 128
    n_rob = 2 if quick else 10
    model, x, y, attr = _setup(b)
    exp = _GradX(model)
    n_steps = -(-64 * 64 // 224)
    out = []

    def causal(fn: Callable, substrate: str, backend: str, steps: int | None = None) -> Callable:
        return lambda: fn(model, x, attr, target=y, substrate=substrate, batch_size=b,
                          n_steps=steps, backend=backend)

    out.append(Case(
        name=f"deletion demo_cnn 64x64 B={b}",
        impls={"pyxai": causal(metrics.deletion, "zeros", "auto"),
               "reference": causal(metrics.deletion, "zeros", "reference"),
               "floor": forward_floor(model, x, (n_steps + 1) * b, b)},
        parity=[("pyxai", "reference", 1e-6)],
        notes=f"RISE: {n_steps} steps of 224 px, {(n_steps + 1) * b} forwards",
    ))
    out.append(Case(
        name=f"insertion demo_cnn 64x64 B={b}",
        impls={"pyxai": causal(metrics.insertion, "blur", "auto"),
               "reference": causal(metrics.insertion, "blur", "reference"),
               "floor": forward_floor(model, x, (n_steps + 1) * b, b)},
        parity=[("pyxai", "reference", 1e-6)],
        notes="RISE blur substrate; Quantus has no insertion metric",
    ))

    def mu(backend: str) -> Callable:
        return lambda: metrics.mu_fidelity(model, x, attr, target=y, n_samples=n_mu,
                                           batch_size=b, backend=backend)

    def faithfulness_correlation() -> torch.Tensor:
        import quantus

        m = quantus.FaithfulnessCorrelation(nr_runs=n_mu, subset_size=224, perturb_baseline=0.0,
                                            normalise=False, return_aggregate=False,
                                            disable_warnings=True)
        return torch.as_tensor(m(model=model, x_batch=x.numpy(), y_batch=y.numpy(),
                                 a_batch=attr.numpy(), device="cpu", batch_size=b))

    out.append(Case(
        name=f"mu_fidelity demo_cnn 64x64 B={b} N={n_mu}",
        impls={"pyxai": mu("auto"), "reference": mu("reference"),
               "floor": forward_floor(model, x, (n_mu + 1) * b, b),
               "quantus": faithfulness_correlation},
        parity=[("pyxai", "reference", 1e-4)],
        notes=f"{(n_mu + 1) * b} forwards; Quantus FaithfulnessCorrelation draws its own pixel "
              "subsets: timed, not compared (tests compare it with injected subsets)",
    ))

    for name, fn, qname, kind, radius, kw in [
        ("max_sensitivity", metrics.max_sensitivity, "MaxSensitivity", "uniform", 0.02,
         {"lower_bound": 0.02}),
        ("avg_sensitivity", metrics.avg_sensitivity, "AvgSensitivity", "uniform", 0.02,
         {"lower_bound": 0.02}),
        ("local_lipschitz", metrics.local_lipschitz, "LocalLipschitzEstimate", "gaussian", 0.1,
         {"perturb_std": 0.1, "normalise": False}),
    ]:
        extra = {"normalise": False} if name == "local_lipschitz" else {}
        noise = draw_noise(kind, (n_rob, *x.shape), radius, 0)
        out.append(Case(
            name=f"{name} demo_cnn 64x64 B={b} n={n_rob}",
            impls={
                "pyxai": (lambda fn=fn, radius=radius, extra=extra:
                          fn(exp, x, target=y, radius=radius, n_samples=n_rob, seed=0, **extra)),
                "floor": _explainer_calls(exp, x, y, n_rob),
                "quantus": _quantus_robustness(qname, model, exp, x, y, noise,
                                                             nr_samples=n_rob, **kw),
            },
            parity=[("quantus", "pyxai", 1e-3)],
            notes=f"input x gradient explainer on {b} + {n_rob * b} inputs; Quantus {qname} with "
                  "the same noise injected (parity) calls the explainer once per sample",
        ))

    b_mem = 2 if quick else 8
    big = 40 if quick else 100
    xm, ym = x[:b_mem], y[:b_mem]

    def sens(n: int) -> Callable:
        return lambda: metrics.max_sensitivity(exp, xm, target=ym, radius=0.02, n_samples=n,
                                               seed=0)

    out.append(Case(
        name=f"max_sensitivity streaming B={b_mem} n=10 vs {big}",
        impls={"pyxai n=10": sens(10), f"pyxai n={big}": sens(big),
               f"all at once n={big}": _all_at_once_sensitivity(exp, xm, ym, big, 0.02),
               "floor": _explainer_calls(exp, xm, ym, big)},
        parity=[(f"pyxai n={big}", f"all at once n={big}", 1e-5)],
        notes="peak MB is the point: flat in n_samples for pyxai (64-row chunks), linear for all "
              f"at once; floor = the n={big} explainer calls in pyxai's chunks",
    ))
    return out
