"""Decode throughput: decord and PyAV (through vad's decoder) against `ffmpeg -f null -`.

Prints one JSON object: frames/s per decoder and file, and each decoder's ratio to ffmpeg's
ceiling (plain decode, and decode + RGB conversion which is what vad needs).

    python bench/decode.py [VIDEO...]     # default: generated 320x240 and 856x480 H.264 clips
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np

from vad.extract.decode import open_video


def make_clip(path: Path, width: int, height: int, n_frames: int = 300, fps: int = 25) -> Path:
    """A textured moving scene as yuv420p H.264 (crf 23), like the surveillance datasets' files."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (height, width * 2, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for t in range(n_frames):
            frame = np.ascontiguousarray(texture[:, t % width: t % width + width])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def time_vad(path: Path, decoder: str, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        count = sum(1 for _ in open_video(path, decoder))
        best = min(best, time.perf_counter() - started)
    return count / best


def time_ffmpeg(path: Path, rgb: bool, repeats: int, n_frames: int) -> float:
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path)]
    command += (["-pix_fmt", "rgb24"] if rgb else []) + ["-f", "null", "-"]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, check=True)
        best = min(best, time.perf_counter() - started)
    return n_frames / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        videos = args.videos or [make_clip(Path(tmp) / "ucf_320x240.mp4", 320, 240), make_clip(Path(tmp) / "sh_856x480.mp4", 856, 480)]
        results = {}
        for path in videos:
            n_frames = sum(1 for _ in open_video(path, "pyav"))
            row = {"frames": n_frames}
            row["ffmpeg_null_fps"] = time_ffmpeg(path, False, args.repeats, n_frames)
            row["ffmpeg_rgb24_null_fps"] = time_ffmpeg(path, True, args.repeats, n_frames)
            for decoder in ("decord", "pyav"):
                fps = time_vad(path, decoder, args.repeats)
                row[f"{decoder}_fps"] = fps
                row[f"{decoder}_vs_ffmpeg_null"] = fps / row["ffmpeg_null_fps"]
                row[f"{decoder}_vs_ffmpeg_rgb24"] = fps / row["ffmpeg_rgb24_null_fps"]
            results[path.name] = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
    json.dump({"bench": "decode", "cpu_count": __import__("os").cpu_count(), "results": results}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
