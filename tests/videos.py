"""Tiny videos made at test time, lossless, so decoders compare pixel for pixel."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def pattern_frames(n: int, width: int = 96, height: int = 64, seed: int = 0) -> np.ndarray:
    """[n,H,W,3] uint8 frames with gradients and a moving square: every frame differs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255) // max(width - 1, 1), (y * 255) // max(height - 1, 1), (x + y) % 256], -1)
    frames = np.repeat(base[None], n, 0).astype(np.uint8)
    for t in range(n):
        top, left = (3 * t) % (height - 8), (5 * t) % (width - 8)
        frames[t, top:top + 8, left:left + 8] = rng.integers(0, 256, 3, dtype=np.uint8)
    return frames


def write_lossless(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    """libx264rgb at qp 0 : decoders return exactly these RGB values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "rgb24"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def clip40_frames() -> np.ndarray:
    """The recipe of the golden clip40.mp4 (tests/data/golden/i3d-r50): 40 frames of 320x240."""
    t = np.arange(40)[:, None, None]
    y = np.arange(240)[None, :, None]
    x = np.arange(320)[None, None, :]
    red = (x * 255) // 319 + 0 * y + 0 * t
    green = (y * 255) // 239 + 0 * x + 0 * t
    blue = (x + y + 4 * t) // 4
    frames = np.stack(np.broadcast_arrays(red, green, blue), -1).astype(np.uint8)
    for i in range(40):
        frames[i, 40 + 2 * i:72 + 2 * i, 20 + 6 * i:52 + 6 * i] = 255
    return frames


def write_codec(path: Path, frames: np.ndarray, codec: str, pix_fmt: str = "yuv420p", fps: int = 25, **options: str) -> Path:
    """A lossy clip in `codec` (PyAV's encoder name; the container follows the suffix) at a high bit rate."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        stream.bit_rate = 20_000_000  # far above what these small frames need: close to the source
        stream.options = options
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path
