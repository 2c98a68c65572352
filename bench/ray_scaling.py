"""Does `vad extract --backend ray` scale with the workers it is given? Snippets/s per actor count.

Runs the real command in a subprocess per setting on generated 320x240 H.264 clips (i3d-r50 with
the golden generator's weights; speed does not depend on weight values), each actor reserving
one CPU and one torch thread, against the local backend with one torch thread. On one machine
this measures what Ray adds per video (scheduling, actor start, the cache writes) and how close
N actors come to N times one; across machines the actors are the same, one per GPU. Prints one
JSON object.

    python bench/ray_scaling.py [--videos 8] [--frames 48] [--actors 1,2]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from extract import make_clips, run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=48, help="frames per clip (48 = 3 snippets)")
    parser.add_argument("--actors", default="1,2")
    args = parser.parse_args()
    vad = str(Path(sys.executable).with_name("vad"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = make_clips(tmp / "videos", args.videos, args.frames)
        from golden_r50 import write_weights

        base = [vad, "extract", str(videos), "--weights", str(write_weights(tmp / "r50.pth")), "--crops", "1",
                "--device", "cpu", "-q", "--overwrite"]
        rows = []
        settings = [("local", None)] + [("ray", int(n)) for n in args.actors.split(",")]
        for backend, actors in settings:
            command = base + ["--cache", str(tmp / f"cache_{backend}_{actors}")]
            if backend == "ray":
                command += ["--backend", "ray", "--ray-actors", str(actors), "--ray-cpus", "1"]
            summary, wall, _ = run(command, env={"OMP_NUM_THREADS": "1"})  # one torch thread per worker in every setting
            # wall_s counts the process start and imports; vad's own seconds start before the model
            # loads (and, for Ray, before the local instance starts), so both include start-up.
            rows.append({"backend": backend, "actors": actors, "snippets": summary["snippets"], "wall_s": round(wall, 1),
                         "vad_seconds": summary["seconds"], "snippets_per_s": round(summary["snippets"] / summary["seconds"], 3),
                         "load_average_1min": round(os.getloadavg()[0], 2)})
            print(rows[-1], file=sys.stderr)
    one = next((r for r in rows if r["actors"] == 1), None)
    for row in rows:
        if one and row["backend"] == "ray":
            row["speedup_over_1_actor"] = round(row["snippets_per_s"] / one["snippets_per_s"], 2)
    print(json.dumps({"bench": "ray_scaling", "cpu_count": os.cpu_count(), "videos": args.videos,
                      "frames_per_video": args.frames, "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
