"""Streaming a decoded video into cropped 16-frame snippets (docs/method.md, Snippets and features).

T = ceil(n_frames / 16); snippet t holds frames 16t..16t+15 and the last one is padded by
repeating the last decoded frame (not looped, not zero-filled). Each frame is resized once.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vad.extract.decode import DecodeError, open_video
from vad.extract.preprocess import Geometry, finish_snippet, jpeg_roundtrip, resize_frame


@dataclass(frozen=True)
class SnippetPlan:
    """Everything a decode worker needs; plain data so it crosses process boundaries."""

    crops: int = 10  # 10 = TenCrop, 1 = centre crop
    jpeg_quality: int | None = None  # JPEG round trip before resizing (the i3d-r50 reference profile)
    decoder: str = "auto"  # auto | decord | pyav
    geometry: Geometry = field(default_factory=Geometry)
    # True: yield whole decoded frames and let the consumer resize and crop next to the network
    # (preprocess.finish_snippet); frames over MAX_DEFERRED_PIXELS are still resized here.
    geometry_on_device: bool = False


# A 16-frame snippet of 1080p is 100 MB of uint8; larger frames (4K: 400 MB) are resized in the
# worker so that the snippets queued between processes stay bounded.
MAX_DEFERRED_PIXELS = 1920 * 1088


@dataclass
class VideoSummary:
    """Filled in while a video streams; complete once its snippet iterator is exhausted."""

    decoder: str = ""
    fps: float = 0.0
    width: int = 0
    height: int = 0
    n_frames: int = 0
    n_snippets: int = 0
    partial: bool = False
    decode_error: str | None = None
    decode_s: float = 0.0

    def as_meta(self) -> dict:
        meta = {
            "decoder": self.decoder,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "n_frames": self.n_frames,
            "partial": self.partial,
        }
        if self.decode_error:
            meta["decode_error"] = self.decode_error
        return meta


def iter_snippets(path: Path, plan: SnippetPlan, summary: VideoSummary) -> Iterator[torch.Tensor]:
    """Yield one uint8 tensor per snippet, filling `summary` as it goes: [crops, 16, crop, crop, 3],
    or with plan.geometry_on_device the snippet's [16, H, W, 3] frames for finish_snippet."""
    geometry = plan.geometry
    stream = open_video(path, plan.decoder)
    summary.decoder, summary.fps = stream.decoder, stream.fps
    summary.width, summary.height = stream.width, stream.height
    resize_here = not plan.geometry_on_device or stream.width * stream.height > MAX_DEFERRED_PIXELS

    def finished(frames: list[np.ndarray]) -> torch.Tensor:
        snippet = torch.from_numpy(np.stack(frames))
        return finish_snippet(snippet, plan.crops, geometry) if not plan.geometry_on_device else snippet

    buffer: list[np.ndarray] = []
    started = time.perf_counter()
    for frame in stream:
        if plan.jpeg_quality is not None:
            frame = jpeg_roundtrip(frame, plan.jpeg_quality)
        buffer.append(resize_frame(frame, geometry.short_side) if resize_here else frame)
        if len(buffer) == geometry.clip_len:
            summary.decode_s += time.perf_counter() - started
            yield finished(buffer)
            summary.n_snippets += 1
            buffer.clear()
            started = time.perf_counter()
    summary.n_frames, summary.partial, summary.decode_error = stream.n_decoded, stream.partial, stream.error
    if stream.n_decoded == 0:
        raise DecodeError(f"{path}: the video stream holds no decodable frame")
    if buffer:
        buffer += [buffer[-1]] * (geometry.clip_len - len(buffer))
        summary.decode_s += time.perf_counter() - started
        yield finished(buffer)
        summary.n_snippets += 1
