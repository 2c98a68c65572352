"""Decode throughput: decord and PyAV (through vad's decoder) against `ffmpeg -f null -`.

Prints one JSON object: frames/s per decoder and file (best of --repeats), and each decoder's
ratio to ffmpeg's ceiling (plain decode, and decode + RGB conversion which is what vad needs).
`auto` is what `vad extract` uses (PyAV, decord as the per-video fallback).

    python bench/decode.py [VIDEO...]     # default: generated 320x240 and 856x480 H.264 clips
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from vad.extract.decode import open_video

# decord is optional where it has no wheel (the GPU image); auto = what `vad extract` uses
DECODERS = ("pyav", "auto") + (("decord",) if importlib.util.find_spec("decord") else ())


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


def run_vad(path: Path, decoder: str) -> float:
    """Seconds to decode every frame to RGB through vad's decoder."""
    started = time.perf_counter()
    for _ in open_video(path, decoder):
        pass
    return time.perf_counter() - started


def ffmpeg_exe() -> str | None:
    """imageio-ffmpeg's binary (a vad dependency), else ffmpeg on PATH, else None (GPU images may have neither)."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except ImportError:
        return shutil.which("ffmpeg")


def run_ffmpeg(path: Path, rgb: bool) -> float:
    command = [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path)]
    command += (["-pix_fmt", "rgb24"] if rgb else []) + ["-f", "null", "-"]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def best_fps(path: Path, n_frames: int, repeats: int) -> dict[str, float]:
    """Best frames/s of each way to decode, the ways interleaved in every round so that load
    from other processes on a shared machine falls on all of them alike."""
    ways = {name: (lambda name=name: run_vad(path, name)) for name in DECODERS}
    if ffmpeg_exe() is not None:
        ways["ffmpeg_null"] = lambda: run_ffmpeg(path, False)
        ways["ffmpeg_rgb24_null"] = lambda: run_ffmpeg(path, True)
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(repeats):
        for name, way in ways.items():
            best[name] = min(best[name], way())
    return {name: n_frames / seconds for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--repeats", type=int, default=5, help="rounds; the best of each is kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        videos = args.videos or [make_clip(Path(tmp) / "ucf_320x240.mp4", 320, 240), make_clip(Path(tmp) / "sh_856x480.mp4", 856, 480)]
        results = {}
        for path in videos:
            n_frames = sum(1 for _ in open_video(path, "pyav"))
            row = {"frames": n_frames}
            fps = best_fps(path, n_frames, args.repeats)
            for decoder in DECODERS:
                row[f"{decoder}_fps"] = fps[decoder]
            if "ffmpeg_null" in fps:
                row["ffmpeg_null_fps"], row["ffmpeg_rgb24_null_fps"] = fps["ffmpeg_null"], fps["ffmpeg_rgb24_null"]
                for decoder in DECODERS:
                    row[f"{decoder}_vs_ffmpeg_null"] = fps[decoder] / row["ffmpeg_null_fps"]
                    row[f"{decoder}_vs_ffmpeg_rgb24"] = fps[decoder] / row["ffmpeg_rgb24_null_fps"]
            results[path.name] = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
    json.dump({"bench": "decode", "cpu_count": os.cpu_count(), "load_average_1min_at_end": round(os.getloadavg()[0], 2),
               "results": results}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
