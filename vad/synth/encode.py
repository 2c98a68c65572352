"""Writing frames as an H.264 mp4: lossy yuv420p as cameras ship it, or lossless RGB."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np

CODECS = ("libx264", "libx264rgb")


def write_clip(path: str | Path, frames: np.ndarray, fps: int = 25, codec: str = "libx264", crf: int = 18,
               preset: str = "veryfast") -> Path:
    """Write [N,H,W,3] uint8 RGB frames as an H.264 mp4.

    `libx264` (yuv420p, constant quality `crf`) is what cameras and datasets ship; `libx264rgb`
    at qp 0 is lossless, so a decoder returns exactly these pixels (tests). Written to a temporary
    name and renamed, so an interrupted run never leaves a truncated video behind.

    x264's macroblock-tree rate control is off: with it, encoding the same frames twice in one
    process gave different pixels (up to 47 levels) on an AMX Xeon, so `vad demo` trained on
    different footage from run to run. Without it the bytes are the same every time.
    """
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty [N,H,W,3] uint8 array, got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if codec == "libx264" and (width % 2 or height % 2):
        raise ValueError(f"yuv420p needs even width and height, got {width}x{height}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        if codec == "libx264":
            stream.pix_fmt, stream.options = "yuv420p", {"crf": str(crf), "preset": preset, "x264-params": "no-mbtree=1"}
        else:
            stream.pix_fmt, stream.options = "rgb24", {"qp": "0", "preset": preset}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    tmp.replace(path)
    return path
