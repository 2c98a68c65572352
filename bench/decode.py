"""Decode throughput: decord and PyAV (through vad's decoder) against `ffmpeg -f null -`.

Prints one JSON object: frames/s per decoder and file (best of --repeats), and each decoder's
ratio to ffmpeg's ceiling (plain decode, and decode + RGB conversion which is what vad needs).
`auto` is what `vad extract` uses (PyAV, decord as the per-video fallback); `pyav_serial` is
PyAV with vad's decode-ahead thread off (decode and RGB conversion in turn, as before issue 16).

    python bench/decode.py [VIDEO...]       # default: the generated clips of CLIPS
    python bench/decode.py --variants       # also PyAV's thread types and conversion paths, decord's threads
    flock LOCKFILE python bench/decode.py   # so that timing runs of other processes never overlap

The default set: H.264 in MP4 as before (a moving full-frame texture, 320x240 and 856x480), and a
CCTV-like scene (a static background, one moving textured block) at 768x576 in the codecs CCTV
recorders and the surveillance datasets use: MPEG-4 part 2 (mpeg4 with B-frames, and msmpeg4v3
/ DivX 3 as UCF-Crime's AVIs, also at their 320x240), MJPEG, HEVC, and H.264 as the control.
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
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from av.codec.codec import Capabilities

from vad.extract import decode as vad_decode
from vad.extract.decode import open_video

# decord is optional where it has no wheel (the GPU image); auto = what `vad extract` uses
DECODERS = ("pyav", "pyav_serial", "auto") + (("decord",) if importlib.util.find_spec("decord") else ())


@dataclass(frozen=True)
class Clip:
    name: str
    encoder: str  # PyAV's encoder name
    decoder: str  # FFmpeg's decoder for it
    width: int
    height: int
    scene: str  # "texture": the whole frame moves; "cctv": a static background, one moving block
    pix_fmt: str = "yuv420p"
    options: dict = field(default_factory=dict)
    bit_rate: int | None = None


CLIPS = (
    Clip("ucf_320x240.mp4", "libx264", "h264", 320, 240, "texture", options={"crf": "23", "preset": "veryfast"}),
    Clip("sh_856x480.mp4", "libx264", "h264", 856, 480, "texture", options={"crf": "23", "preset": "veryfast"}),
    Clip("cctv_768x576_h264.mp4", "libx264", "h264", 768, 576, "cctv", options={"crf": "23", "preset": "veryfast"}),
    # mpeg4 as Xvid/DivX 5 write it (B-frames); bit rates of a DVR's MPEG-4 recording
    Clip("cctv_768x576_mpeg4.avi", "mpeg4", "mpeg4", 768, 576, "cctv", options={"bf": "2"}, bit_rate=3_000_000),
    Clip("cctv_768x576_msmpeg4v3.avi", "msmpeg4", "msmpeg4", 768, 576, "cctv", bit_rate=3_000_000),
    Clip("ucf_320x240_msmpeg4v3.avi", "msmpeg4", "msmpeg4", 320, 240, "cctv", bit_rate=800_000),
    Clip("cctv_768x576_mjpeg.avi", "mjpeg", "mjpeg", 768, 576, "cctv", pix_fmt="yuvj420p", options={"q:v": "3"}),
    Clip("cctv_768x576_hevc.mp4", "libx265", "hevc", 768, 576, "cctv", options={"crf": "28", "preset": "ultrafast", "x265-params": "log-level=error"}),
)


def scene_frames(clip: Clip, n_frames: int):
    """RGB frames of the clip's scene, the same for every codec."""
    rng = np.random.default_rng(0)
    width, height = clip.width, clip.height
    if clip.scene == "texture":
        texture = rng.integers(0, 256, (height, width * 2, 3), dtype=np.uint8)
        for t in range(n_frames):
            yield np.ascontiguousarray(texture[:, t % width: t % width + width])
        return
    # 16x16 flat blocks: smooth enough to cost little to code, as a fixed camera's background does
    background = np.kron(rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8), np.ones((16, 16, 1), np.uint8))[:height, :width]
    block = rng.integers(0, 256, (height // 4, width // 6, 3), dtype=np.uint8)
    for t in range(n_frames):
        frame = background.copy()
        top, left = (3 * t) % (height - block.shape[0]), (5 * t) % (width - block.shape[1])
        frame[top:top + block.shape[0], left:left + block.shape[1]] = block
        yield frame


def unavailable(clip: Clip) -> str | None:
    """Why this PyAV build cannot write or read the clip's codec; None when it can."""
    for name, mode in ((clip.encoder, "w"), (clip.decoder, "r")):
        try:
            av.codec.Codec(name, mode)
        except av.codec.codec.UnknownCodecError:
            return f"this PyAV build has no {name} {'encoder' if mode == 'w' else 'decoder'}"
    return None


def make_clip(clip: Clip, folder: Path, n_frames: int, fps: int = 25) -> Path:
    path = folder / clip.name
    with av.open(str(path), "w") as container:
        stream = container.add_stream(clip.encoder, rate=fps)
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, clip.pix_fmt
        if clip.bit_rate:
            stream.bit_rate = clip.bit_rate
        stream.options = dict(clip.options)
        for frame in scene_frames(clip, n_frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def make_h264(path: Path, width: int, height: int, n_frames: int = 300, fps: int = 25) -> Path:
    """A textured moving scene as yuv420p H.264 (crf 23) at `path`: the clip the other benches score and extract."""
    clip = Clip(path.name, "libx264", "h264", width, height, "texture", options={"crf": "23", "preset": "veryfast"})
    return make_clip(clip, path.parent, n_frames, fps)


def run_vad(path: Path, decoder: str) -> float:
    """Seconds to decode every frame to RGB through vad's decoder; pyav_serial: its decode-ahead thread off."""
    ahead = vad_decode.DECODE_AHEAD
    vad_decode.DECODE_AHEAD = 0 if decoder == "pyav_serial" else ahead
    try:
        started = time.perf_counter()
        for _ in open_video(path, "pyav" if decoder == "pyav_serial" else decoder):
            pass
        return time.perf_counter() - started
    finally:
        vad_decode.DECODE_AHEAD = ahead


def run_pyav(path: Path, thread_type: str, convert: str) -> float:
    """Seconds for PyAV alone: convert "none" (decode only), "rgb" (to_ndarray in turn), "rgb_ahead" (decoding in a thread)."""
    started = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = thread_type
        frames = container.decode(stream)
        if convert == "rgb_ahead":
            frames = vad_decode.decode_ahead(frames, vad_decode.DECODE_AHEAD)
        for frame in frames:
            if convert != "none":
                frame.to_ndarray(format="rgb24", threads=1)
    return time.perf_counter() - started


def run_decord(path: Path, num_threads: int) -> float:
    import decord

    started = time.perf_counter()
    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=num_threads)
    for start in range(0, len(reader), 32):
        reader.get_batch(list(range(start, min(start + 32, len(reader))))).asnumpy()
    return time.perf_counter() - started


def ffmpeg_exe() -> str | None:
    """imageio-ffmpeg's binary (a vad dependency), else ffmpeg on PATH, else None (GPU images may have neither)."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except ImportError:
        return shutil.which("ffmpeg")


def run_ffmpeg(path: Path, rgb: bool, frames: int | None = None) -> float:
    command = [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path)]
    command += (["-pix_fmt", "rgb24"] if rgb else []) + (["-frames:v", str(frames)] if frames else []) + ["-f", "null", "-"]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def ways_to_decode(path: Path, variants: bool) -> dict:
    ways = {name: (lambda name=name: run_vad(path, name)) for name in DECODERS}
    if ffmpeg_exe() is not None:
        ways["ffmpeg_null"] = lambda: run_ffmpeg(path, False)
        ways["ffmpeg_rgb24_null"] = lambda: run_ffmpeg(path, True)
    if variants:
        for thread_type in ("NONE", "SLICE", "FRAME", "AUTO"):
            ways[f"pyav_{thread_type.lower()}_decode_only"] = lambda t=thread_type: run_pyav(path, t, "none")
        ways["pyav_auto_rgb"] = lambda: run_pyav(path, "AUTO", "rgb")
        ways["pyav_auto_rgb_ahead"] = lambda: run_pyav(path, "AUTO", "rgb_ahead")
        if "decord" in DECODERS:
            for threads in (1, 2):
                ways[f"decord_threads{threads}"] = lambda n=threads: run_decord(path, n)
    return ways


def best_fps(path: Path, n_frames: int, repeats: int, variants: bool) -> dict[str, float]:
    """Best frames/s of each way to decode, the ways interleaved in every round so that load
    from other processes on a shared machine falls on all of them alike, and each round starting
    one way further: in a fixed order `pyav` (first) ran 4-21% slower than `pyav_serial` (second)
    on H.264, HEVC and mpeg4, where the two ran the same code."""
    ways = ways_to_decode(path, variants)
    names = list(ways)
    best = dict.fromkeys(ways, float("inf"))
    for round_ in range(repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            best[name] = min(best[name], ways[name]())
    return {name: n_frames / seconds for name, seconds in best.items()}


def bench_file(path: Path, repeats: int, variants: bool) -> dict:
    stream = open_video(path, "pyav")
    n_frames = sum(1 for _ in stream)
    with av.open(str(path)) as container:
        codec = container.streams.video[0].codec_context.codec
    row = {"codec": codec.name, "frame_threads": bool(codec.capabilities & Capabilities.frame_threads),
           "slice_threads": bool(codec.capabilities & Capabilities.slice_threads), "frames": n_frames, "pyav_decode_ahead": stream.decode_ahead}
    fps = best_fps(path, n_frames, repeats, variants)
    row.update({f"{name}_fps": value for name, value in fps.items()})
    if "ffmpeg_null" in fps:
        # ffmpeg's own start-up, paid once per run and not by the in-process decoders
        row["ffmpeg_one_frame_s"] = min(run_ffmpeg(path, False, frames=1) for _ in range(3))
        for name in fps:
            if not name.startswith("ffmpeg"):
                row[f"{name}_vs_ffmpeg_null"] = fps[name] / fps["ffmpeg_null"]
        for name in DECODERS:
            row[f"{name}_vs_ffmpeg_rgb24"] = fps[name] / fps["ffmpeg_rgb24_null"]
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)), "pyav": av.__version__,
            "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])), "decode_ahead_depth": vad_decode.DECODE_AHEAD}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--repeats", type=int, default=5, help="rounds; the best of each is kept")
    parser.add_argument("--frames", type=int, default=1000, help="frames per generated clip (ffmpeg's start-up is ~30 ms of a run)")
    parser.add_argument("--variants", action="store_true", help="also PyAV per thread type and conversion path, decord per thread count")
    args = parser.parse_args()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        results, skipped = {}, {}
        videos = list(args.videos)
        for clip in CLIPS if not videos else ():
            reason = unavailable(clip)
            if reason:
                skipped[clip.name] = reason
            else:
                videos.append(make_clip(clip, Path(tmp), args.frames))
        for path in videos:
            results[path.name] = bench_file(path, args.repeats, args.variants)
    json.dump({"bench": "decode", **machine(),
               "load_average_at_start": [round(v, 2) for v in load_start], "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
               "skipped": skipped, "results": results}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
