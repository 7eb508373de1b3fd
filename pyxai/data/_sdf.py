"""Signed distance functions (SDFs) of the demo shapes, vectorised over images and pixels.

Every function takes local coordinates ``qx, qy`` (Tensor[m, H, W], the pixel centres rotated and
scaled into the shape's frame) and returns the signed distance (Tensor[m, H, W]) in the same units:
negative inside, positive outside. Distances only need to be right near the boundary (they drive a
one-pixel anti-aliased edge), so unions and polygons use cheap min/max combinations.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def box(qx: Tensor, qy: Tensor, hx: float | Tensor, hy: float | Tensor) -> Tensor:
    """Axis-aligned box with half-extents ``hx``, ``hy`` centred at the origin."""
    dx = qx.abs() - hx
    dy = qy.abs() - hy
    outside = torch.sqrt(dx.clamp(min=0) ** 2 + dy.clamp(min=0) ** 2)
    inside = torch.maximum(dx, dy).clamp(max=0)
    return outside + inside


def circle(qx: Tensor, qy: Tensor, radius: float = 0.85) -> Tensor:
    """Disc of ``radius``."""
    return torch.sqrt(qx * qx + qy * qy) - radius


def square(qx: Tensor, qy: Tensor, half: float = 0.66) -> Tensor:
    """Square with half-side ``half`` (corners at distance ``half * sqrt(2)``)."""
    return box(qx, qy, half, half)


def triangle(qx: Tensor, qy: Tensor, circumradius: float = 0.95) -> Tensor:
    """Equilateral triangle (one vertex on +y) as the intersection of three half-planes."""
    inradius = 0.5 * circumradius
    d = None
    for k in range(3):
        a = -math.pi / 2 + k * 2 * math.pi / 3  # outward normal of edge k
        dk = qx * math.cos(a) + qy * math.sin(a) - inradius
        d = dk if d is None else torch.maximum(d, dk)
    return d


def cross(qx: Tensor, qy: Tensor, arm: float = 0.9, width: float = 0.27) -> Tensor:
    """Plus sign: union of two bars of half-length ``arm`` and half-width ``width``."""
    return torch.minimum(box(qx, qy, arm, width), box(qx, qy, width, arm))


def ring(qx: Tensor, qy: Tensor, radius: float = 0.68, half_width: float = 0.22) -> Tensor:
    """Annulus of mid radius ``radius`` and half thickness ``half_width``."""
    return (torch.sqrt(qx * qx + qy * qy) - radius).abs() - half_width


def star(qx: Tensor, qy: Tensor, points: int = 5, outer: float = 0.95, inner: float = 0.42) -> Tensor:
    """Star polygon with ``points`` tips at radius ``outer`` and valleys at radius ``inner``.

    The angle is folded into one half-sector [0, pi/points] (tip at 0, valley at pi/points), where
    the boundary is the segment tip -> valley.
    """
    sector = 2 * math.pi / points
    rho = torch.sqrt(qx * qx + qy * qy)
    ang = torch.remainder(torch.atan2(qy, qx), sector)
    ang = torch.minimum(ang, sector - ang)
    px, py = rho * torch.cos(ang), rho * torch.sin(ang)
    ax, ay = outer, 0.0
    bx, by = inner * math.cos(sector / 2), inner * math.sin(sector / 2)
    ex, ey = bx - ax, by - ay
    wx, wy = px - ax, py - ay
    t = ((wx * ex + wy * ey) / (ex * ex + ey * ey)).clamp(0.0, 1.0)
    dist = torch.sqrt((wx - t * ex) ** 2 + (wy - t * ey) ** 2)
    inside = (ex * wy - ey * wx) > 0  # left of tip -> valley, the origin's side
    return torch.where(inside, -dist, dist)


def segment(qx: Tensor, qy: Tensor, half_length: Tensor, half_width: Tensor) -> Tensor:
    """Capsule along x: segment of half-length ``half_length`` (Tensor[m, 1, 1]) and round caps."""
    dx = (qx.abs() - half_length).clamp(min=0)
    return torch.sqrt(dx * dx + qy * qy) - half_width


def arc(qx: Tensor, qy: Tensor, radius: Tensor, half_angle: Tensor, half_width: Tensor) -> Tensor:
    """Thin circular arc centred on +x, spanning ``[-half_angle, half_angle]`` (Tensor[m, 1, 1])."""
    ay = qy.abs()
    rho = torch.sqrt(qx * qx + ay * ay)
    on_arc = torch.atan2(ay, qx) <= half_angle
    ex, ey = radius * torch.cos(half_angle), radius * torch.sin(half_angle)
    to_end = torch.sqrt((qx - ex) ** 2 + (ay - ey) ** 2)
    return torch.where(on_arc, (rho - radius).abs(), to_end) - half_width


def ellipse(qx: Tensor, qy: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Approximate ellipse with semi-axes ``a`` (x) and ``b`` (y), Tensor[m, 1, 1]."""
    return (torch.sqrt((qx / a) ** 2 + (qy / b) ** 2) - 1.0) * torch.minimum(a, b)
