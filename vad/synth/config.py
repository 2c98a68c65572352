"""The specs of a synthetic clip: the camera (`SceneConfig`) and the clip itself (`ClipSpec`), validated."""
from __future__ import annotations

from dataclasses import dataclass, field

from vad.synth.kinds import ANOMALIES

Color = tuple[int, int, int]
Interval = tuple[int, int]


@dataclass(frozen=True)
class SceneConfig:
    """One fixed camera. Frozen and hashable: the painted background is cached per config."""

    scene_id: int = 0  # layout seed: horizon, walkways, buildings, trees and palette follow from it
    width: int = 320  # frame width in pixels (even, for yuv420p)
    height: int = 240  # frame height in pixels (even)
    noise_sigma: float = 2.0  # sensor noise standard deviation, grey levels
    flicker: float = 0.015  # relative amplitude of the lighting flicker (mains hum, auto exposure)
    timestamp: bool = True  # burn in a CCTV clock, as most surveillance footage has

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 24 or self.width % 2 or self.height % 2:
            raise ValueError(f"scene size must be even and at least 32x24, got {self.width}x{self.height}")


@dataclass(frozen=True)
class ClipSpec:
    """One clip of one scene. `anomaly="none"` is a normal clip."""

    scene: SceneConfig = field(default_factory=SceneConfig)
    seed: int = 0  # every actor, pause, colour, noise frame and the event timing follow from it
    n_frames: int = 160  # clip length in frames
    fps: int = 25  # frame rate; speeds are per second, so motion per frame follows it
    anomaly: str = "none"  # "none" or a name in ANOMALIES
    max_walkers: int = 5  # background walkers are drawn in [1, max_walkers] (normal clips: at least 2)

    def __post_init__(self) -> None:
        if self.anomaly != "none" and self.anomaly not in ANOMALIES:
            raise ValueError(f"unknown anomaly {self.anomaly!r}; known: none, {', '.join(ANOMALIES)}")
        if self.n_frames < 16:
            raise ValueError(f"n_frames must be at least 16, got {self.n_frames}")
        if self.fps < 1 or self.max_walkers < 1:
            raise ValueError("fps and max_walkers must be positive")
