"""Network-only throughput of a backbone: clips/s and achieved TFLOP/s per precision and memory layout.

Random uint8 clips already on the device go through exactly what `Engine.flush` (vad.extract.engine) does
(normalise on the device, autocast, the backbone), so the figure is the ceiling that decode and
preprocessing must keep fed. FLOPs per clip come from bench/flops.py (conv MACs x 2).

    python bench/network.py [--device cpu|cuda] [--backbone i3d-r50] [--batch 4] [--crops 1]
                            [--precisions fp32,bf16,fp16] [--layouts contiguous,channels_last_3d]
                            [--seconds 5] [--peak-tflops 0]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vad.extract.backbones import get_backbone  # noqa: E402
from vad.extract.engine import PRECISIONS, configure_backends  # noqa: E402
from vad.extract.preprocess import to_network_layout  # noqa: E402

from flops import backbone_gmacs  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model, spec, device: torch.device, batch: int, crops: int, precision: str, layout: str, seconds: float) -> dict:
    """Clips/s of the backbone over at least `seconds` (after two warm-up passes)."""
    dtype = PRECISIONS[precision]
    clips = torch.randint(0, 256, (batch, crops, 16, 224, 224, 3), dtype=torch.uint8, device=device)
    if layout == "channels_last_3d":
        model = model.to(memory_format=torch.channels_last_3d)

    @torch.inference_mode()
    def step():
        x = spec.normalise(to_network_layout(clips)).flatten(0, 1)
        if layout == "channels_last_3d":
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            return model(x).float()

    for _ in range(2):
        step()
    sync(device)
    runs, started = 0, time.perf_counter()
    while True:
        step()
        runs += 1
        sync(device)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and runs >= 2:
            break
    if layout == "channels_last_3d":
        model.to(memory_format=torch.contiguous_format)
    return {"precision": precision, "layout": layout, "batch_snippets": batch, "crops": crops,
            "clips_per_s": round(runs * batch * crops / elapsed, 3), "snippets_per_s": round(runs * batch / elapsed, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone", default="i3d-r50", choices=["i3d-r50", "i3d-inception"])
    parser.add_argument("--batch", type=int, default=4, help="snippets per forward pass")
    parser.add_argument("--crops", type=int, default=1)
    parser.add_argument("--precisions", default="fp32,bf16,fp16")
    parser.add_argument("--layouts", default="contiguous,channels_last_3d")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per setting")
    parser.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=True,
                        help="let cuDNN time its algorithms per input shape")
    parser.add_argument("--peak-tflops", type=str, default="", help="the device's dense peak per precision, e.g. fp32=67,bf16=989,fp16=989")
    args = parser.parse_args()
    device = torch.device(args.device)
    configure_backends(device, "fp32", 1)  # as extraction: no TF32, so the fp32 figure is true fp32
    torch.backends.cudnn.benchmark = args.cudnn_benchmark  # the bench times both choices
    spec = get_backbone(args.backbone)
    model = spec.build().eval().to(device)  # weights do not change the speed
    gflop = backbone_gmacs(args.backbone)["gflop_per_clip"]
    peaks = dict((k, float(v)) for k, v in (p.split("=") for p in args.peak_tflops.split(",") if p))
    results = []
    for precision in args.precisions.split(","):
        for layout in args.layouts.split(","):
            row = measure(model, spec, device, args.batch, args.crops, precision, layout, args.seconds)
            row["tflops"] = round(row["clips_per_s"] * gflop / 1e3, 3)
            if precision in peaks:
                row["fraction_of_peak"] = round(row["tflops"] / peaks[precision], 4)
            results.append(row)
            print(f"{precision} {layout}: {row['clips_per_s']} clips/s, {row['tflops']} TFLOP/s", file=sys.stderr)
    print(json.dumps({"bench": "network", "device": str(device),
                      "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{os.cpu_count()}",
                      "torch": torch.__version__, "threads": torch.get_num_threads(), "backbone": args.backbone,
                      "gflop_per_clip": gflop, "load_average_1min_at_end": round(os.getloadavg()[0], 2), "results": results}, indent=1))


if __name__ == "__main__":
    main()
