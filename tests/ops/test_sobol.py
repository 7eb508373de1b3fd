"""sobol ops: native kernels vs the pure-PyTorch reference vs literal oracles; opcheck; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyxai import ops
from pyxai.ops.sobol import ESTIMATORS, sobol_design, sobol_indices
from tests.conftest import native_or_skip

DTYPES = [torch.float32, torch.float64]


def _design_oracle(a, b):
    """[A; B; C_0..C_{d-1}] built the slow way."""
    rows = [a, b]
    for i in range(a.shape[1]):
        c = a.clone()
        c[:, i] = b[:, i]
        rows.append(c)
    return torch.cat(rows)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, d", [(1, 1), (8, 5), (32, 64), (4, 121)])
def test_design_native_reference_oracle(rng, dtype, n, d):
    a = torch.rand(n, d, generator=rng, dtype=torch.float64).to(dtype)
    b = torch.rand(n, d, generator=rng, dtype=torch.float64).to(dtype)
    full = _design_oracle(a, b)
    total = (d + 2) * n
    first = int(torch.randint(0, total, (1,), generator=rng))
    count = int(torch.randint(0, total - first + 1, (1,), generator=rng))
    ref = sobol_design(a, b, first, count, backend="reference")
    assert torch.equal(ref, full[first : first + count])
    assert torch.equal(sobol_design(a, b, backend="reference"), full)
    native_or_skip()
    assert torch.equal(sobol_design(a, b, first, count, backend="native"), ref)
    # non-contiguous A/B
    at, bt = a.T.contiguous().T, b.T.contiguous().T
    assert torch.equal(sobol_design(at, bt, first, count, backend="native"), ref)


def _literal(name, ya, yb, yc):
    """Total- and first-order formulas written literally (NumPy float64, one output column)."""
    n, d = len(ya), yc.shape[0]
    f0 = ya.mean()
    v = ((ya - f0) ** 2).sum() / (n - 1)
    tot, fst = [], []
    for i in range(d):
        c = yc[i]
        if name == "jansen":
            tot.append(((ya - c) ** 2).sum() / (2 * n * v))
            fst.append(1 - ((yb - c) ** 2).sum() / (2 * n * v))
        elif name == "homma":
            tot.append((v - (ya * c).mean() + f0**2) / v)
            fst.append(((yb * c).mean() - f0**2) / v)
        elif name == "saltelli":
            tot.append(1 - ((ya * c).mean() - f0**2) / v)
            fst.append((yb * (c - ya)).mean() / v)
        elif name == "janon":
            for y, out, is_total in ((ya, tot, True), (yb, fst, False)):
                f = (y + c).mean() / 2
                vv = (y**2 + c**2).sum() / (2 * (n - 1)) - f**2
                s = ((y * c).mean() - f**2) / vv
                out.append(1 - s if is_total else s)
        else:
            cov_a = ((ya - ya.mean()) * (c - c.mean())).sum() / (n - 1)
            cov_b = ((yb - yb.mean()) * (c - c.mean())).sum() / (n - 1)
            tot.append(1 - cov_a / np.sqrt(ya.var() * c.var()))
            fst.append(cov_b / np.sqrt(yb.var() * c.var()))
    return np.array(tot), np.array(fst)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_indices_native_reference_literal(rng, estimator, dtype):
    n, d, p = 32, 7, 3
    ya = (torch.randn(n, p, generator=rng, dtype=torch.float64) + 3).to(dtype)
    yb = (torch.randn(n, p, generator=rng, dtype=torch.float64) + 3).to(dtype)
    yc = (torch.randn(d, n, p, generator=rng, dtype=torch.float64) + 3).to(dtype)
    ref = sobol_indices(ya, yb, yc, estimator, backend="reference")
    assert ref.shape == (2, d, p) and ref.dtype == dtype
    for q in range(p):
        tot, fst = _literal(estimator, ya[:, q].double().numpy(), yb[:, q].double().numpy(),
                            yc[:, :, q].double().numpy())
        np.testing.assert_allclose(ref[0, :, q].double().numpy(), tot, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ref[1, :, q].double().numpy(), fst, rtol=1e-5, atol=1e-5)
    native_or_skip()
    nat = sobol_indices(ya, yb, yc, estimator, backend="native")
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(nat, ref, rtol=tol, atol=tol)
    # non-contiguous outputs
    nat2 = sobol_indices(ya.T.contiguous().T, yb, yc.transpose(1, 2).contiguous().transpose(1, 2),
                         estimator, backend="native")
    torch.testing.assert_close(nat2, nat, rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_indices_constant_column_is_zero(backend):
    if backend == "native":
        native_or_skip()
    ya = torch.randn(16, 2)
    ya[:, 1] = 2.5
    yb, yc = torch.randn(16, 2), torch.randn(3, 16, 2)
    for est in ESTIMATORS:
        out = sobol_indices(ya, yb, yc, est, backend=backend)
        assert torch.isfinite(out).all() and (out[:, :, 1] == 0).all()
    assert ops.sobol.degenerate_outputs(ya).tolist() == [False, True]


def test_opcheck_and_compile():
    native_or_skip()
    a, b = torch.rand(4, 6), torch.rand(4, 6)
    torch.library.opcheck(torch.ops.pyxai.sobol_design.default, (a, b, 3, 20))
    ya, yb, yc = torch.randn(8, 2), torch.randn(8, 2), torch.randn(5, 8, 2)
    for est in ESTIMATORS:
        torch.library.opcheck(torch.ops.pyxai.sobol_indices.default, (ya, yb, yc, est))

    @torch.compile(backend="eager", fullgraph=True)
    def f(a, b):
        return torch.ops.pyxai.sobol_design(a, b, 0, 10) * 2

    assert f(a, b).shape == (10, 6)


def test_bad_arguments():
    a = torch.rand(4, 3)
    with pytest.raises(ValueError, match="B"):
        sobol_design(a, torch.rand(4, 2))
    with pytest.raises(TypeError, match="B"):
        sobol_design(a, a.double())
    with pytest.raises(ValueError, match="rows"):
        sobol_design(a, a, 10, 20)
    with pytest.raises(ValueError, match="first"):
        sobol_design(a, a, -1, 2)
    ya = torch.randn(8, 2)
    with pytest.raises(ValueError, match="estimator"):
        sobol_indices(ya, ya, torch.randn(3, 8, 2), "sobol")
    with pytest.raises(ValueError, match="yC"):
        sobol_indices(ya, ya, torch.randn(3, 7, 2))
    with pytest.raises(ValueError, match="2 design points"):
        sobol_indices(ya[:1], ya[:1], torch.randn(3, 1, 2))
    native_or_skip()
    with pytest.raises(RuntimeError, match="estimator"):
        torch.ops.pyxai.sobol_indices(ya, ya, torch.randn(3, 8, 2), "nope")
    with pytest.raises(RuntimeError, match="outside"):
        torch.ops.pyxai.sobol_design(a, a, 0, 100)
