"""Video on CUDA: per-frame Grad-CAM maps equal the CPU ones; frames/s and clips/s are printed
(recorded when a GPU is lent; skipped without one by tests/gpu/conftest.py)."""

from __future__ import annotations

import time

import torch
import torchvision

from pyxai.video import VideoExplainer


def test_resnet50_frames_and_r3d_18_clips_on_cuda():
    g = torch.Generator().manual_seed(0)
    model = torchvision.models.resnet50(num_classes=10).eval()
    frames = torch.rand(64, 3, 224, 224, generator=g)
    cpu = [m for _, _, m, _ in VideoExplainer(model, "gradcam", batch_frames=8,
                                              layer=model.layer4).stream(frames[:8])]
    gpu_model = model.cuda()
    vx = VideoExplainer(gpu_model, "gradcam", batch_frames=32, layer=gpu_model.layer4)
    gpu = [m for _, _, m, _ in vx.stream(frames[:8])]
    torch.testing.assert_close(torch.stack(gpu), torch.stack(cpu), atol=1e-3, rtol=1e-3)
    list(vx.stream(frames[:32]))  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    n = sum(1 for _ in vx.stream(frames))
    print(f"ResNet-50 224x224 Grad-CAM: {n / (time.perf_counter() - t0):.1f} frames/s (fp32, b=32)")
    clip_model = torchvision.models.video.r3d_18(num_classes=10).eval().cuda()
    cx = VideoExplainer(clip_model, "gradcam", clip_len=16, stride=4, batch_frames=4)
    clips = torch.rand(64, 3, 112, 112, generator=g)
    list(cx.stream(clips[:20]))
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = list(cx.stream(clips))
    windows = (64 - 16) // 4 + 1
    print(f"r3d_18 16x112x112 clip Grad-CAM: {windows / (time.perf_counter() - t0):.1f} clips/s")
    assert len(out) == 64
