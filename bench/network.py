"""Network-only throughput: the plain and the fast (inference) form of each backbone, per precision.

Random uint8 clips already on the device go through what `Engine.flush` (vad.extract.engine) runs
on a batch (normalise on the device, autocast, the backbone), so the figure is the ceiling that
decode and preprocessing must keep fed. The forms alternate round by round and each reports its
best round, so a neighbour's load on a shared machine hits both alike; CPU seconds per clip are
reported too. FLOPs per clip come from bench/flops.py (conv MACs x 2). `--compile` adds the
torch.compile'd fast form, with its compile time.

    python bench/network.py [--device cpu|cuda] [--backbones i3d-r50,i3d-inception] [--batch 1]
                            [--crops 1] [--precisions fp32,bf16,fp16] [--rounds 3] [--seconds 4]
                            [--compile] [--peak-tflops fp32=67,bf16=989,fp16=989]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vad.extract.backbones import get_backbone  # noqa: E402
from vad.extract.engine import PRECISIONS, Compiled, configure_backends  # noqa: E402
from vad.extract.preprocess import to_network_layout  # noqa: E402
from vad.hardware import cpu_description, native_bf16  # noqa: E402

from flops import backbone_gmacs  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_round(step, device: torch.device, clips_per_step: int, seconds: float) -> tuple[float, float]:
    """(clips/s, CPU seconds per clip) over at least `seconds` and two steps."""
    runs, started, cpu = 0, time.perf_counter(), cpu_seconds()
    while True:
        step()
        runs += 1
        sync(device)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and runs >= 2:
            return runs * clips_per_step / elapsed, (cpu_seconds() - cpu) / (runs * clips_per_step)


def make_step(model, spec, clips: torch.Tensor, dtype):
    @torch.inference_mode()
    def step():
        x = spec.normalise(to_network_layout(clips)).flatten(0, 1)
        with torch.autocast(clips.device.type, dtype=dtype, enabled=dtype is not None):
            return model(x).float()

    return step


def measure_backbone(name: str, args, device: torch.device, precisions: list[str]) -> list[dict]:
    spec = get_backbone(name)
    plain = spec.build().eval()  # weights do not change the speed
    forms = {"plain": plain.to(device), "fast": spec.fast(plain).to(device)}
    compile_s = None
    if args.compile:
        forms["fast_compiled"] = Compiled(forms["fast"], device)
    gflop = backbone_gmacs(name)["gflop_per_clip"]
    peaks = dict((k, float(v)) for k, v in (p.split("=") for p in args.peak_tflops.split(",") if p))
    clips = torch.randint(0, 256, (args.batch, args.crops, 16, 224, 224, 3), dtype=torch.uint8, device=device)
    rows = []
    for precision in precisions:
        steps = {form: make_step(model, spec, clips, PRECISIONS[precision]) for form, model in forms.items()}
        for form, step in steps.items():  # warm-up (and compilation) outside the timed rounds
            started = time.perf_counter()
            step()
            step()
            sync(device)
            if form == "fast_compiled" and compile_s is None:
                compile_s = round(time.perf_counter() - started, 1)
        best = {form: (0.0, float("inf")) for form in steps}
        for _ in range(args.rounds):
            for form, step in steps.items():
                rate, cpu = timed_round(step, device, args.batch * args.crops, args.seconds)
                best[form] = (max(best[form][0], rate), min(best[form][1], cpu))
        row = {"backbone": name, "precision": precision, "clips_per_pass": args.batch * args.crops}
        for form, (rate, cpu) in best.items():
            row[f"{form}_clips_per_s"] = round(rate, 3)
            row[f"{form}_cpu_s_per_clip"] = round(cpu, 3)
            row[f"{form}_tflops"] = round(rate * gflop / 1e3, 3)
            if precision in peaks:
                row[f"{form}_fraction_of_peak"] = round(rate * gflop / 1e3 / peaks[precision], 4)
        row["fast_over_plain"] = round(best["fast"][0] / best["plain"][0], 3)
        if "fast_compiled" in best:
            row["compiled_over_plain"] = round(best["fast_compiled"][0] / best["plain"][0], 3)
            row["compile_s"] = compile_s
            row["compile_fell_back"] = forms["fast_compiled"].failed
        print(f"{name} {precision}: plain {row['plain_clips_per_s']}, fast {row['fast_clips_per_s']} clips/s "
              f"({row['fast_over_plain']}x)", file=sys.stderr)
        rows.append(row)
    return rows


def default_precisions(device: torch.device) -> str:
    """Every precision the device multiplies natively: emulated bf16 on a CPU without it takes minutes per clip."""
    if device.type == "cuda":
        return "fp32,bf16,fp16"
    return "fp32,bf16" if native_bf16(device) else "fp32"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbones", default="i3d-r50,i3d-inception")
    parser.add_argument("--batch", type=int, default=1, help="snippets per forward pass (vad's CPU engine passes one clip at a time)")
    parser.add_argument("--crops", type=int, default=1)
    parser.add_argument("--precisions", default=None, help="default: the device's native ones")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds per form; the best counts")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per timed round")
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile'd fast form")
    parser.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, default=True,
                        help="let cuDNN time its algorithms per input shape")
    parser.add_argument("--peak-tflops", type=str, default="", help="the device's dense peak per precision, e.g. fp32=67,bf16=989,fp16=989")
    args = parser.parse_args()
    device = torch.device(args.device)
    configure_backends(device, "fp32", 1)  # as extraction: no TF32, so the fp32 figure is true fp32
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    precisions = (args.precisions or default_precisions(device)).split(",")
    results = [row for name in args.backbones.split(",") for row in measure_backbone(name, args, device, precisions)]
    print(json.dumps({"bench": "network", "device": str(device),
                      "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{os.cpu_count()}",
                      **cpu_description(), "native_bf16": native_bf16(device),
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "load_average_1min_at_end": round(os.getloadavg()[0], 2), "results": results}, indent=1))


if __name__ == "__main__":
    main()
