"""Where CPU extraction time goes: decode, preprocessing (JPEG round trip, resize, crops), network.

Each stage is timed on its own over the same generated H.264 clip, per snippet, so the split
does not depend on how the runner overlaps them; then `vad.extract.runner.run_extraction` runs end to
end with 0, 1 and 2 DataLoader decode workers to show what overlapping buys on this machine.
i3d-r50 with the golden generator's weights (speed does not depend on weight values). Prints
one JSON object.

    python bench/profile_extract.py [--width 320 --height 240] [--frames 64] [--crops 1,10]
                                    [--workers 0,1,2] [--skip-e2e]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from vad.extract.backbones import get_backbone  # noqa: E402
from vad.extract.decode import open_video  # noqa: E402
from vad.extract.inputs import discover  # noqa: E402
from vad.extract.preprocess import jpeg_roundtrip, resize_frame, snippet_crops, to_network_layout  # noqa: E402
from vad.extract.resize_torch import resize_like_pillow  # noqa: E402
from vad.extract.runner import ExtractConfig, run_extraction  # noqa: E402

from decode import make_h264  # noqa: E402


def timed(fn, repeats: int = 2) -> tuple[float, object]:
    """(best seconds, last result) of fn()."""
    best, out = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def stage_split(path: Path, crops_list: list[int], weights: Path) -> dict:
    """Seconds per snippet of each stage, measured apart."""
    seconds, frames = timed(lambda: list(open_video(path, "auto")))
    n_snippets = -(-len(frames) // 16)
    per = {"decode": seconds / n_snippets}
    jpeg_s, jpeg_frames = timed(lambda: [jpeg_roundtrip(f, 95) for f in frames])
    per["jpeg_q95_roundtrip"] = jpeg_s / n_snippets
    resize_s, resized = timed(lambda: [resize_frame(f, 256) for f in jpeg_frames])
    per["resize_256"] = resize_s / n_snippets
    # The same resize as integer tensors (what --resize-on device runs next to the network), here on the CPU.
    batch = torch.from_numpy(np.stack(jpeg_frames))
    new_h, new_w = resized[0].shape[:2]
    torch_s, _ = timed(lambda: resize_like_pillow(batch, new_h, new_w))
    snippets = [np.stack(resized[i:i + 16]) for i in range(0, len(resized) - 15, 16)]
    spec = get_backbone("i3d-r50")
    from vad.extract.engine import load_backbone

    model, _ = load_backbone(spec, weights, torch.device("cpu"))
    out = {"frames": len(frames), "snippets": n_snippets, "seconds_per_snippet": {}}
    for crops in crops_list:
        crop_s, cropped = timed(lambda crops=crops: [snippet_crops(s, crops) for s in snippets])
        row = dict(per, **{f"crops_{crops}": crop_s / len(snippets)})

        @torch.inference_mode()
        def network(cropped=cropped):
            x = spec.normalise(to_network_layout(cropped[0]))
            return model(x)

        network_s, _ = timed(network, repeats=2)
        row["network_fp32"] = network_s
        total = sum(row.values())
        out["seconds_per_snippet"][f"crops_{crops}"] = {k: round(v, 4) for k, v in row.items()}
        out["resize_256_torch_cpu_s_per_snippet"] = round(torch_s / n_snippets, 4)
        out.setdefault("share_of_serial_time", {})[f"crops_{crops}"] = {
            "decode": round(row["decode"] / total, 4),
            "preprocess": round((row["jpeg_q95_roundtrip"] + row["resize_256"] + row[f"crops_{crops}"]) / total, 4),
            "network": round(row["network_fp32"] / total, 4),
        }
    return out


def end_to_end(videos: Path, weights: Path, crops: int, workers_list: list[int], resize_on: list[str], tmp: Path) -> list[dict]:
    items = discover([str(videos)])
    rows = []
    for where in resize_on:
        for workers in workers_list:
            config = ExtractConfig(weights=weights, crops=crops, device="cpu", workers=workers, resize_on=where, overwrite=True)
            started = time.perf_counter()
            report = run_extraction(items, tmp / f"cache_w{workers}", config, progress=False)
            wall = time.perf_counter() - started
            rows.append({"workers": workers, "resize_on": where, "crops": crops, "snippets": report.snippets, "wall_s": round(wall, 2),
                         "snippets_per_s": round(report.snippets / wall, 4), "load_average_1min": round(os.getloadavg()[0], 2)})
            print(f"workers={workers} resize_on={where}: {rows[-1]['snippets_per_s']} snippets/s", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--crops", default="1,10")
    parser.add_argument("--workers", default="0,1,2", help="end-to-end runs with these DataLoader worker counts")
    parser.add_argument("--e2e-crops", type=int, default=1, help="crops of the end-to-end runs")
    parser.add_argument("--resize-on", default="workers", help="end-to-end runs with each of these (workers, device)")
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    from golden_r50 import write_weights

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = tmp / "videos"
        videos.mkdir()
        clip = make_h264(videos / "clip.mp4", args.width, args.height, n_frames=args.frames)
        weights = write_weights(tmp / "r50.pth")
        result = {"bench": "profile_extract", "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                  "video": f"{args.width}x{args.height} H.264, {args.frames} frames", "profile": "reference (JPEG q95)",
                  "split": stage_split(clip, [int(c) for c in args.crops.split(",")], weights)}
        if not args.skip_e2e:
            result["end_to_end"] = end_to_end(videos, weights, args.e2e_crops, [int(w) for w in args.workers.split(",")],
                                               args.resize_on.split(","), tmp)
        result["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
