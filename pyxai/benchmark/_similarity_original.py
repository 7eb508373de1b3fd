"""Direct one-pair implementations of the reference algorithms (SPECS §9), written from the
reference code's loops: per-window copies, ``nn.CosineSimilarity``, torchvision ``RandomErasing``
on the global RNG, NumPy accumulation, hooks on the feature tensor. The slow oracles of
tests/similarity and the "original" rows of ``pyxai bench similarity``; never used by the
explainers. Needs torchvision (imported when called).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

measure = nn.CosineSimilarity(dim=-1)


def occlusion(img1, img2, model, w_size, stride, batch_size=32, normalize=True):
    """explain-cl ``occlusion`` for one pair (Tensor[1, C, H, W] each; square grid from img2's width)."""
    n = int((img2.size(-1) - w_size) / stride + 1)
    with torch.no_grad():
        c1, c2 = model(img1), model(img2)
    im1, im2 = [], []
    for i in range(n):
        for j in range(n):
            a, b = img1.clone(), img2.clone()
            a[:, :, i * stride:i * stride + w_size, j * stride:j * stride + w_size] = 0
            b[:, :, i * stride:i * stride + w_size, j * stride:j * stride + w_size] = 0
            im1.append(a)
            im2.append(b)
    im1, im2 = torch.cat(im1), torch.cat(im2)
    s1, s2 = [], []
    for k in range(0, im1.shape[0], batch_size):
        with torch.no_grad():
            o1, o2 = model(im1[k:k + batch_size]), model(im2[k:k + batch_size])
        s1.append(measure(o1, c2))
        s2.append(measure(c1, o2))
    h1 = torch.cat(s1).view(n, n).numpy().astype(np.float64)
    h2 = torch.cat(s2).view(n, n).numpy().astype(np.float64)
    base = measure(c1, c2).item()
    h1, h2 = (h1 - base) * -1, (h2 - base) * -1
    if normalize:
        h1 = (h1 - h1.min()) / (h1.max() - h1.min())
        h2 = (h2 - h2.min()) / (h2.max() - h2.min())
    return h1, h2


def occlusion_context_agnostic(img1, img2, model, w_size, stride):
    """explain-cl ``occlusion_context_agnositc`` (commit a853dd1) for one pair."""
    n = int((img2.size(-1) - w_size) / stride + 1)
    with torch.no_grad():
        c1, c2 = model(img1), model(img2)
    h1, h2 = np.zeros((n, n)), np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            sl = (slice(None), slice(None), slice(i * stride, i * stride + w_size),
                  slice(j * stride, j * stride + w_size))
            zs = []
            for img in (img1, img2):
                masked = img.clone()
                masked[sl] = 0
                bg = torch.zeros_like(img)
                bg[sl] = img[sl]
                with torch.no_grad():
                    zs.append(model(bg) - model(masked))
            h1[i, j] = measure(zs[0], c2).item()
            h2[i, j] = measure(c1, zs[1]).item()
    return [(h - h.min()) / (h.max() - h.min()) for h in (h1, h2)]


def pairwise_occlusion(img1, img2, model, num_erases, erase_scale=(0.1, 0.3), erase_ratio=(1, 1.5)):
    """explain-cl ``pairwise_occlusion`` for one pair, boxes from the torch global RNG (the caller
    seeds it); maps at the image size instead of the hard-coded 224 x 224."""
    with torch.no_grad():
        c1, c2 = model(img1), model(img2)
    baseline = measure(c1, c2)
    import torchvision.transforms as T

    erase = T.RandomErasing(p=1.0, scale=erase_scale, ratio=erase_ratio)
    im1, im2 = [], []
    for _ in range(num_erases):
        im1.append(erase(img1.clone()))
        im2.append(erase(img2.clone()))
    im1, im2 = torch.cat(im1), torch.cat(im2)
    with torch.no_grad():
        o1, o2 = model(im1), model(im2)
    sims = F.softmax(baseline - measure(o1, o2), dim=-1).numpy()
    w1, w2 = o1.norm(dim=-1).numpy(), o2.norm(dim=-1).numpy()
    a1, a2 = np.zeros(img1.shape[2:]), np.zeros(img2.shape[2:])
    for k in range(im1.shape[0]):
        e1 = im1[k].numpy().transpose((1, 2, 0)).sum(axis=-1)
        e2 = im2[k].numpy().transpose((1, 2, 0)).sum(axis=-1)
        if w1[k] < w2[k]:
            a1[e1 == 0] += sims[k]
        else:
            a2[e2 == 0] += sims[k]
    return a1 / (np.max(a1) + 1e-9), a2 / (np.max(a2) + 1e-9)


def interaction_cam(model, layer, img1, img2, reduction, grad_interact=False, reshape=None):
    """explain-cl ``get_interactioncam`` for one pair; the feature tensor is taken at ``layer`` by a
    forward hook (its gradient by ``register_hook``), as the reference's GradCAM module does with
    ``encoder.net``; the CAM is the layer-resolution map Tensor[h, w]."""
    feats, grads = {}, {}

    def run(img, key):
        def hook(mod, inp, out):
            out.register_hook(lambda g: grads.__setitem__(key, g.detach()))
            feats[key] = out.detach()
        h = layer.register_forward_hook(hook)
        try:
            return model(img)
        finally:
            h.remove()

    score = measure(run(img1, "1"), run(img2, "2"))
    score.backward()
    f1, f2, g1, g2 = feats["1"], feats["2"], grads["1"], grads["2"]
    if reshape is not None:
        f1, f2, g1, g2 = reshape(f1), reshape(f2), reshape(g1), reshape(g2)
    if grad_interact:
        b, d, h, w = g1.size()
        g_ = torch.bmm(g1.permute(0, 2, 3, 1).reshape(b, h * w, d).permute(0, 2, 1),
                       g2.permute(0, 2, 3, 1).reshape(b, h * w, d))
        g1 = torch.max(g_, dim=-1)[0][:, :, None, None]
        g2 = torch.max(g_, dim=1)[0][:, :, None, None]
    if reduction == "mean":
        jw = f1.mean([2, 3]) * f2.mean([2, 3])
    elif reduction == "max":
        jw = F.max_pool2d(f1, kernel_size=f1.size()[2:]).squeeze(-1).squeeze(-1) * \
            F.max_pool2d(f2, kernel_size=f2.size()[2:]).squeeze(-1).squeeze(-1)
    else:
        b, d, h, w = f1.size()
        r1 = f1.permute(0, 2, 3, 1).reshape(b, h * w, d)
        r2 = f2.permute(0, 2, 3, 1).reshape(b, h * w, d)
        a1 = (r1.mean(1).unsqueeze(1) @ r1.transpose(-2, -1)).softmax(dim=-1)
        a2 = (r2.mean(1).unsqueeze(1) @ r2.transpose(-2, -1)).softmax(dim=-1)
        jw = (a1 @ r1).squeeze(1) * (a2 @ r2).squeeze(1)
    jw = jw[:, :, None, None].expand_as(f1)
    cam1 = torch.sum(f1 * jw * F.relu(g1), dim=1).squeeze()
    cam2 = torch.sum(f2 * jw * F.relu(g2), dim=1).squeeze()
    return cam1, cam2


def mixed_images(img1, img2, step=0.1):
    """explain-cl ``create_mixed_images`` without noise: ``lam * pure + (1 - lam) * aug``."""
    return [lam * img1 + (1 - lam) * img2 for lam in np.arange(1, 0, -step)]


def averaged_transforms(model, mixed, guided=False, blur_output=False):
    """explain-cl ``averaged_transforms`` for one pair (``mixed``: list of Tensor[1, C, H, W])."""
    if guided:  # backward hooks on every ReLU returning relu(grad_in), on a copy of the model
        model = copy.deepcopy(model)
        for m in model.modules():
            if isinstance(m, nn.ReLU):
                m.register_full_backward_hook(lambda mod, gi, go: (F.relu(gi[0]),))
    g1, g2 = [], []
    for xbar in mixed[1:]:
        a = mixed[0].clone().requires_grad_()
        b = xbar.clone().requires_grad_()
        measure(model(a), model(b)).backward()
        g1.append(a.grad)
        g2.append(b.grad)
    g1 = torch.cat(g1).mean(0).unsqueeze(0)
    g2 = torch.cat(g2).mean(0).unsqueeze(0)
    s1 = torch.max((mixed[0] * g1).abs(), dim=1)[0]
    s2 = torch.max((mixed[-1] * g2).abs(), dim=1)[0]
    if blur_output:
        import torchvision.transforms.functional as TF

        s1 = TF.gaussian_blur(s1, kernel_size=[11, 11], sigma=[5, 5])
        s2 = TF.gaussian_blur(s2, kernel_size=[11, 11], sigma=[5, 5])
    return s1, s2


def nmf_invariance_labels(model, samples2, n_components=10, random_state=None, batch_size=32):
    """explain-cl's TIP ``get_pixel_invariance_dataset`` NMF labels: row means of
    ``NMF(n_components, init='random').fit_transform(relu(model(views)))``, Tensor[T, 1]."""
    from sklearn.decomposition import NMF

    with torch.no_grad():
        feats = torch.cat([F.relu(model(samples2[b:b + batch_size]))
                           for b in range(0, samples2.shape[0], batch_size)])
    nmf = NMF(n_components=n_components, init="random", random_state=random_state)
    w = nmf.fit_transform(feats.cpu().numpy())
    return torch.from_numpy(w.mean(1)).unsqueeze(-1)


def pixel_invariance(samples1, samples2, labels, size, epochs, lr, l1_weight, weight, bias,
                     zero_small_values=True, blur_output=True, labels_invariance=None, nmf_weight=None):
    """explain-cl ``pixel_invariance`` for one image (the surrogate initialised with the given
    ``weight``, ``bias`` instead of nn.Linear's random draw); with ``labels_invariance`` and
    ``nmf_weight``, its NMF (TIP) version."""
    import torchvision.transforms as T
    import torchvision.transforms.functional as TF

    x1 = T.Resize((size, size))(samples1).reshape(samples1.size(0), -1)
    x2 = T.Resize((size, size))(samples2).reshape(samples2.size(0), -1)
    surrogate = nn.Linear(x1.shape[1], 1).double() if x1.dtype == torch.float64 else nn.Linear(x1.shape[1], 1)
    with torch.no_grad():
        surrogate.weight.copy_(weight[None])
        surrogate.bias.copy_(bias.reshape(1))
    criterion = nn.BCEWithLogitsLoss(reduction="sum")
    opt = torch.optim.SGD(surrogate.parameters(), lr=lr)
    for _ in range(epochs):
        preds = (surrogate(x1) + surrogate(x2)) / 2
        loss = criterion(preds, labels)
        if nmf_weight is not None:
            loss += nmf_weight * nn.MSELoss()(torch.sigmoid(preds), labels_invariance)
        if l1_weight is not None:
            loss += l1_weight * sum(p.abs().sum() for p in surrogate.parameters())
        opt.zero_grad()
        loss.backward()
        opt.step()
    heat = surrogate.weight.detach().reshape(samples1.shape[1], size, size)
    heat = torch.max(heat, 0)[0]
    heat = (heat - heat.min()) / (heat.max() - heat.min())
    if zero_small_values:
        heat[heat < 0.5] = 0
    if blur_output:
        heat = TF.gaussian_blur(heat.unsqueeze(0), kernel_size=[11, 11], sigma=[5, 5]).squeeze(0)
    return heat
