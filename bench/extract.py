"""CPU extraction throughput of `vad extract`: snippets/s and peak RSS, per profile and crop count.

Runs the real command in a subprocess on generated 320x240 H.264 clips with the golden
generated i3d-r50 weights (no download needed; speed does not depend on weight values) and
prints one JSON object.

    python bench/extract.py [--frames 160] [--videos 2] [--backbone i3d-r50]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from decode import make_h264  # noqa: E402


def make_clips(folder: Path, n: int, frames: int) -> Path:
    """`n` generated 320x240 H.264 clips of `frames` frames each in `folder` (created)."""
    folder.mkdir(parents=True)
    for i in range(n):
        make_h264(folder / f"clip{i}.mp4", 320, 240, n_frames=frames)
    return folder


def run(command: list[str], env: dict | None = None) -> tuple[dict, float, int]:
    """(vad's JSON summary, wall seconds, peak RSS in MiB of the child); `env` adds to the environment."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not the max over all children
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return json.loads(output.strip().splitlines()[-1]), wall, usage.ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=96, help="frames per generated clip")
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--backbone", default="i3d-r50", choices=["i3d-r50", "i3d-inception"])
    parser.add_argument("--crops", default="1,10")
    args = parser.parse_args()
    vad = str(Path(sys.executable).with_name("vad"))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = make_clips(tmp / "videos", args.videos, args.frames)
        weights = []
        if args.backbone == "i3d-r50":
            from golden_r50 import write_weights

            weights = ["--weights", str(write_weights(tmp / "r50.pth"))]
        profiles = ["reference", "direct"] if args.backbone == "i3d-r50" else ["reference"]
        for profile in profiles:
            for crops in args.crops.split(","):
                cache = tmp / f"cache_{profile}_{crops}"
                summary, wall, peak = run([vad, "extract", str(videos), "--cache", str(cache), "--backbone", args.backbone, "--profile", profile,
                                           "--crops", crops, "--device", "cpu", "-q", *weights])
                results.append({
                    "backbone": args.backbone, "profile": profile, "crops": int(crops),
                    "snippets": summary["snippets"], "wall_s": round(wall, 2),
                    "snippets_per_s": round(summary["snippets"] / wall, 3),
                    "clips_per_s": round(summary["snippets"] * int(crops) / wall, 3),
                    "peak_rss_mib": peak,
                })
    print(json.dumps({"bench": "extract", "device": "cpu", "torch_threads": os.cpu_count(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
