"""A scene's geometry: walkway centre lines and the perspective that sizes a person by image row."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from vad.synth.config import SceneConfig


class Polyline:
    """A walkway centre line in image coordinates; positions are arc lengths, extrapolated past the ends."""

    def __init__(self, points: list[tuple[float, float]]):
        self.points = np.asarray(points, dtype=np.float64)
        seg = np.diff(self.points, axis=0)
        self.seg_len = np.hypot(seg[:, 0], seg[:, 1])
        self.unit = seg / self.seg_len[:, None]
        self.cum = np.concatenate([[0.0], np.cumsum(self.seg_len)])
        self.length = float(self.cum[-1])

    def at(self, s: float) -> tuple[float, float, float, float]:
        """(x, y, unit tangent x, unit tangent y) at arc length s."""
        i = int(np.clip(np.searchsorted(self.cum, s, side="right") - 1, 0, len(self.seg_len) - 1))
        ux, uy = self.unit[i]
        d = s - self.cum[i]
        return self.points[i, 0] + ux * d, self.points[i, 1] + uy * d, ux, uy


@dataclass
class Scene:
    """A painted background plus the geometry actors need."""

    config: SceneConfig
    background: Image.Image  # RGB, painted once
    horizon: float  # image row of the horizon / building line
    near_height: float  # body height in pixels of a person standing on the bottom row
    paths: list[Polyline]  # walkways, each running edge to edge (or bottom edge to a side edge)
    path_weights: list[float]  # how often walkers pick each walkway
    camera: int  # camera number in the clock overlay

    def body_height(self, y: float) -> float:
        """Pixels a 1.7 m person standing at row y spans: linear in depth, 30% of near at the horizon."""
        depth = (y - self.horizon) / (self.config.height - self.horizon)
        return self.near_height * (0.3 + 0.7 * float(np.clip(depth, 0.0, 1.2)))

    def visible(self, x: float, y: float, h: float, half_width: float = 0.35) -> bool:
        """True if a box of height h standing on (x, y) overlaps the frame."""
        w = half_width * h
        return x + w >= 0 and x - w < self.config.width and y >= 0 and y - h < self.config.height


FAR_PATHS = (1, 2)  # indices in Scene.paths of the walkway along the buildings and the one leading to it
