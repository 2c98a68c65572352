"""Streaming a decoded video into cropped 16-frame snippets (docs/method.md, Snippets and features).

T = ceil(n_frames / 16); snippet t holds frames 16t..16t+15 and the last one is padded by
repeating the last decoded frame (not looped, not zero-filled). Each frame is resized once.
A frame size that changes mid-stream (a camera that renegotiates, recordings concatenated) needs
no special case: each frame is resized and cropped to the backbone's geometry as any other, so a
snippet that holds both sizes gives the same crops as if each frame were its own video.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vad.extract.decode import DecodeError, open_video
from vad.extract.preprocess import Geometry, finish_snippet, jpeg_roundtrip, resize_frame

log = logging.getLogger("vad")


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


def finish_frames(frames: list[np.ndarray], plan: SnippetPlan) -> torch.Tensor:
    """One snippet's frames -> what a decode worker yields: [crops, F, crop, crop, 3], or with
    plan.geometry_on_device the [F, H, W, 3] frames. Frames of different sizes (a resolution change
    inside the snippet) cannot be stacked: each run of one size is resized and cropped here, on the
    CPU, with the same bit-exact resize, and the snippet goes on as crops (Engine crops only frames)."""
    if all(f.shape == frames[0].shape for f in frames):
        snippet = torch.from_numpy(np.stack(frames))
        return snippet if plan.geometry_on_device else finish_snippet(snippet, plan.crops, plan.geometry)
    runs: list[list[np.ndarray]] = []
    for frame in frames:
        if runs and runs[-1][0].shape == frame.shape:
            runs[-1].append(frame)
        else:
            runs.append([frame])
    return torch.cat([finish_snippet(torch.from_numpy(np.stack(run)), plan.crops, plan.geometry) for run in runs], dim=-4)


def resize_in_worker(frame: np.ndarray, plan: SnippetPlan) -> bool:
    """Whether this frame is resized in the decode worker: always unless geometry is deferred, and
    frames over MAX_DEFERRED_PIXELS even then (decided per frame: the size may change mid-stream)."""
    return not plan.geometry_on_device or frame.shape[0] * frame.shape[1] > MAX_DEFERRED_PIXELS


def iter_snippets(path: Path, plan: SnippetPlan, summary: VideoSummary) -> Iterator[torch.Tensor]:
    """Yield one uint8 tensor per snippet, filling `summary` as it goes: [crops, 16, crop, crop, 3],
    or with plan.geometry_on_device the snippet's [16, H, W, 3] frames for finish_snippet (crops where the frame
    size changes inside the snippet: finish_frames)."""
    geometry = plan.geometry
    stream = open_video(path, plan.decoder)
    summary.decoder, summary.fps = stream.decoder, stream.fps
    summary.width, summary.height = stream.width, stream.height

    buffer: list[np.ndarray] = []
    size = None
    started = time.perf_counter()
    for frame in stream:
        if frame.shape != size:
            if size is not None:
                log.info("%s: the frame size changes from %dx%d to %dx%d at frame %d", path, size[1], size[0], frame.shape[1], frame.shape[0],
                         stream.n_decoded - 1)
            size = frame.shape
        if plan.jpeg_quality is not None:
            frame = jpeg_roundtrip(frame, plan.jpeg_quality)
        buffer.append(resize_frame(frame, geometry.short_side) if resize_in_worker(frame, plan) else frame)
        if len(buffer) == geometry.clip_len:
            summary.decode_s += time.perf_counter() - started
            yield finish_frames(buffer, plan)
            summary.n_snippets += 1
            buffer.clear()
            started = time.perf_counter()
    summary.n_frames, summary.partial, summary.decode_error = stream.n_decoded, stream.partial, stream.error
    if stream.n_decoded == 0:
        raise DecodeError(f"{path}: the video stream holds no decodable frame")
    if buffer:
        buffer += [buffer[-1]] * (geometry.clip_len - len(buffer))
        summary.decode_s += time.perf_counter() - started
        yield finish_frames(buffer, plan)
        summary.n_snippets += 1
