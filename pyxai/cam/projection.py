"""First principal component of feature maps, on the device (pytorch-grad-cam's
``utils/svd_on_activations.py``: ``get_2d_projection`` and ``get_2d_projection_kernel``).

Each map Tensor[K, *spatial] is read as ``N = prod(spatial)`` samples of K features, NaN set to 0,
centred over the samples; EigenCAM's projection is ``X v1`` (v1 the first right singular vector of
the centred X), KPCA-CAM's is the first kernel principal component ``a1 sqrt(l1)`` of the centred
kernel matrix (scikit-learn's ``KernelPCA(n_components=1)``). Batched over B, no host round trip.

The sign of a principal component is arbitrary. scikit-learn fixes it (``svd_flip``: the
largest-magnitude entry of the eigenvector is positive), so KPCA-CAM equals pytorch-grad-cam. For
the SVD, pytorch-grad-cam keeps whatever sign ``numpy.linalg.svd`` returns, which depends on the
LAPACK build (here torch's LAPACK and NumPy's OpenBLAS agree on about half of random maps): pyxai
applies the same ``svd_flip`` convention to EigenCAM's projection, so its maps are deterministic
across devices and equal pytorch-grad-cam's whenever NumPy's sign is that one (the projection
itself equals NumPy's up to that sign).
"""

from __future__ import annotations

import torch

KERNELS = ("linear", "poly", "rbf", "sigmoid", "cosine")


def _samples(maps: torch.Tensor) -> torch.Tensor:
    """Tensor[B, K, *sp] -> centred Tensor[B, N, K] with NaN set to 0."""
    x = maps.reshape(maps.shape[0], maps.shape[1], -1).transpose(1, 2)
    x = torch.where(torch.isnan(x), torch.zeros_like(x), x)
    return x - x.mean(1, keepdim=True)


def _flip(p: torch.Tensor) -> torch.Tensor:
    """Tensor[B, N]: sign chosen so the largest-magnitude entry of each row is positive."""
    pick = p.gather(1, p.abs().argmax(1, keepdim=True))
    return p * torch.where(pick < 0, -1.0, 1.0).to(p.dtype)


def project_2d(maps: torch.Tensor) -> torch.Tensor:
    """EigenCAM's projection of Tensor[B, K, *spatial] onto its first principal component.

    Returns:
        Tensor[B, *spatial] of maps' dtype (float32 math for float32 maps, as pytorch-grad-cam).
    """
    x = _samples(maps)
    vh = torch.linalg.svd(x, full_matrices=False).Vh[:, 0]  # [B, K]
    p = torch.einsum("bnk,bk->bn", x, vh)
    return _flip(p).reshape(maps.shape[0], *maps.shape[2:]).to(maps.dtype)


def kernel_matrix(x: torch.Tensor, kernel: str, gamma: float | None, degree: int = 3,
                  coef0: float = 1.0) -> torch.Tensor:
    """scikit-learn's ``pairwise_kernels(x, x, kernel)`` for Tensor[B, N, K] -> Tensor[B, N, N]."""
    g = 1.0 / x.shape[-1] if gamma is None else gamma
    if kernel == "cosine":
        xn = x / x.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        xn = torch.where(x.norm(dim=-1, keepdim=True) == 0, torch.zeros_like(x), xn)
        return xn @ xn.transpose(1, 2)
    if kernel == "rbf":
        return torch.exp(-g * torch.cdist(x, x).square())
    dot = x @ x.transpose(1, 2)
    if kernel == "linear":
        return dot
    if kernel == "poly":
        return (g * dot + coef0) ** degree
    return torch.tanh(g * dot + coef0)


def project_2d_kernel(maps: torch.Tensor, kernel: str = "sigmoid", gamma: float | None = None
                      ) -> torch.Tensor:
    """KPCA-CAM's projection: first kernel principal component of Tensor[B, K, *spatial].

    Args:
        maps: Tensor[B, K, *spatial].
        kernel: one of ``linear``, ``poly``, ``rbf``, ``sigmoid``, ``cosine`` (scikit-learn's).
        gamma: kernel coefficient; None = 1 / K (scikit-learn's default).

    Returns:
        Tensor[B, *spatial] of maps' dtype (computed in float64).
    """
    x = _samples(maps).double()
    k = kernel_matrix(x, kernel, gamma)
    # KernelCenterer: K - 1K - K1 + 1K1
    col = k.mean(1, keepdim=True)
    row = k.mean(2, keepdim=True)
    k = k - col - row + k.mean((1, 2), keepdim=True)
    k = (k + k.transpose(1, 2)) / 2
    vals, vecs = torch.linalg.eigh(k)
    lam, v = vals[:, -1], vecs[:, :, -1]
    p = _flip(v) * lam.clamp_min(0).sqrt()[:, None]
    return p.reshape(maps.shape[0], *maps.shape[2:]).to(maps.dtype)
