"""Cost of scoring an archive with `vad score INPUT... --out DIR`: videos per CPU hour, wall seconds.

Generates an archive of short clips in camera folders (ARCHIVE/cam1/..., cam2/..., ...; rendered
by `vad.synth.make_dataset`, H.264) and runs the real command lines in subprocesses, as a user
runs them, with an untrained i3d-inception detector (1 crop, the reference profile) saved with
models/io.py: scoring speed does not depend on training. The backbone uses the real Inception
weights (`vad weights fetch i3d-inception`, or VAD_WEIGHTS_DIR=weights/ in the checkout).

  (a) local: `vad score ARCHIVE --out DIR` (videos per CPU hour, wall seconds);
  (b) ray: the same with `--backend ray`, 2 actors of 1 CPU each, when `vad score --help`
      lists `--backend` (else reported as unavailable);
  (c) cache: `vad extract --backbone i3d-inception --crops 1 --profile reference` once, then
      `vad score --cache CACHE --out DIR`, each timed, against (a) on the same clips;
  (d) resume: (a) run again over its own DIR, where every video is skipped.

CPU seconds are the child's own and its waited-for children's (os.wait4); Ray's workers are not
the command's children, so the Ray row gives wall time only. Prints one JSON object.

    python bench/archive.py [--clips 50] [--frames 32] [--size 160x120] [--cameras 2] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from score import backbone_weights, make_model  # noqa: E402

BACKBONE = "i3d-inception"
PROFILE = "reference"


def run(command: list[str]) -> dict:
    """Wall and CPU seconds of one command line; its last stderr lines for the record."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr_text = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {code}):\n{stderr_text[-2000:]}")
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "stderr_tail": stderr_text.strip().splitlines()[-1:] if stderr_text.strip() else []}


def per_hour(n: int, seconds: float) -> float:
    return round(3600 * n / seconds, 1) if seconds > 0 else float("inf")


def make_archive(root: Path, clips: int, frames: int, size: tuple[int, int], cameras: int) -> list[Path]:
    """`clips` videos spread round-robin over root/cam1..camN (a quarter of them abnormal)."""
    from vad.synth import make_dataset

    staging = root.parent / "staging"
    n_abnormal = clips // 4
    make_dataset(staging, clips - n_abnormal, n_abnormal, seed=0, size=size, n_frames=frames)
    videos = sorted((staging / "videos").rglob("*.mp4"))
    placed = []
    for index, video in enumerate(videos):
        camera = root / f"cam{index % cameras + 1}"
        camera.mkdir(parents=True, exist_ok=True)
        target = camera / f"{index:04d}_{video.stem}.mp4"
        shutil.move(str(video), target)
        placed.append(target)
    shutil.rmtree(staging)
    return placed


def score_help(vad: str) -> str:
    return subprocess.run([vad, "score", "--help"], capture_output=True, text=True, check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=50, help="videos in the archive")
    parser.add_argument("--frames", type=int, default=32, help="frames per clip (25 fps; 32 = 2 snippets)")
    parser.add_argument("--size", default="160x120", help="WIDTHxHEIGHT of the clips")
    parser.add_argument("--cameras", type=int, default=2, help="camera folders the clips are spread over")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--keep", type=Path, default=None, help="keep the archive, outputs and cache in this folder")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    vad = str(Path(sys.executable).with_name("vad"))

    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        weights, origin = backbone_weights(BACKBONE, work)
        if weights is None:
            raise SystemExit(f"no {BACKBONE} weights: {origin}")
        started = time.perf_counter()
        videos = make_archive(work / "archive", args.clips, args.frames, (width, height), args.cameras)
        generate_s = time.perf_counter() - started
        model = make_model(work / "model.pt", BACKBONE, weights, PROFILE)
        n = len(videos)
        snippets = n * -(-args.frames // 16)
        common = ["--model", str(model), "--weights", str(weights), "--device", "cpu", "--batch-size", str(args.batch_size), "-q"]
        archive = str(work / "archive")

        def row(measured: dict, **extra) -> dict:
            out = measured | extra
            out["videos_per_wall_hour"] = per_hour(n, measured["wall_s"])
            if extra.get("cpu_complete", True):
                out["videos_per_cpu_hour"] = per_hour(n, measured["cpu_s"])
            out["snippets_per_wall_s"] = round(snippets / measured["wall_s"], 3)
            return out

        results = {}
        local = run([vad, "score", archive, "--out", str(work / "out_local"), *common])
        results["local"] = row(local)
        resume = run([vad, "score", archive, "--out", str(work / "out_local"), *common])
        results["resume_all_skipped"] = resume | {"s_per_video": round(resume["wall_s"] / n, 4),
                                                 "note": "whole command: start-up, model load, records checked, summary rewritten"}

        help_text = score_help(vad)
        if "--backend" in help_text:
            ray = [vad, "score", archive, "--out", str(work / "out_ray"), *common, "--backend", "ray"]
            if "--ray-actors" in help_text:
                ray += ["--ray-actors", "2"]
            if "--ray-cpus" in help_text:
                ray += ["--ray-cpus", "1"]
            results["ray_2_actors"] = row(run(ray), cpu_complete=False, command_tail=ray[ray.index("--backend"):],
                                          note="wall only: Ray's workers are not the command's children")
        else:
            results["ray_2_actors"] = {"unavailable": "`vad score --help` lists no --backend"}

        cache = str(work / "cache")
        extract = run([vad, "extract", archive, "--cache", cache, "--backbone", BACKBONE, "--crops", "1", "--profile", PROFILE,
                       "--weights", str(weights), "--device", "cpu", "--batch-size", str(args.batch_size), "-q"])
        cached = run([vad, "score", "--cache", cache, "--out", str(work / "out_cache"), "--model", str(model), "--device", "cpu", "-q"])
        results["cache"] = {
            "extract": row(extract), "score_cache": row(cached),
            "score_cache_vs_raw_wall": round(local["wall_s"] / cached["wall_s"], 1),
            "extract_plus_score_cache_wall_s": round(extract["wall_s"] + cached["wall_s"], 2),
        }
        outputs = [p for p in (work / "out_local").rglob("*.csv") if p.parent != work / "out_local"]  # not summary/events
        with open(work / "out_local" / "summary.csv") as summary:
            summary_rows = sum(1 for _ in summary) - 1

    import torch

    from vad.hardware import cpu_description

    print(json.dumps({
        "bench": "archive", "cpu": cpu_description(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "clips": n, "cameras": args.cameras, "frames": args.frames, "size": f"{width}x{height}", "fps": 25,
        "snippets": snippets, "backbone": BACKBONE, "crops": 1, "profile": PROFILE, "weights": origin,
        "generate_s": round(generate_s, 2), "local_outputs": len(outputs), "local_summary_rows": summary_rows, "results": results,
    }, indent=1))


if __name__ == "__main__":
    main()
