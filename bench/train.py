"""Training throughput of the ARMS detector: optimizer steps/s and peak memory.

One step = one mini-batch of 30 normal + 30 abnormal videos, every crop of 32 segments through
the detector (docs/method.md, Training), forward + AR-MIL + pseudo-label BCE (eq. 5) + backward
+ Adam; averaging crops before the loss (the default) or not costs the same. Each (D, crops)
runs in its own process so peak RSS is its own. Prints one JSON object on stdout, with the load
average before and after (on a shared machine the figures are only as good as the load).

The step is the trainer's: its Adam (`make_optimizer`: foreach on the CPU, fused on CUDA) and its
precision (`--precision`, auto as `vad train`). `--adam loop` times PyTorch's per-tensor Adam
instead, the trainer's optimiser before issue 16.

    python bench/train.py [--dims 2048,1024] [--crops 1,10] [--steps 5] [--device cpu|cuda]
                          [--precision auto|fp32|bf16] [--adam trainer|loop]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def measure(dim: int, crops: int, steps: int, warmup: int, device: str, precision: str, adam: str) -> dict:
    import torch

    from vad.models.config import make_config, training_precision
    from vad.models.detector import build_detector
    from vad.models.losses import ar_mil_loss, phase_loss
    from vad.models.trainer import adam_implementation, make_optimizer

    torch.manual_seed(0)
    model = build_detector(feature_dim=dim).to(device)
    config = make_config(lr=1e-4, weight_decay=5e-4, precision=precision, device=device)
    if adam == "loop":
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=False, fused=False)
    else:
        optimizer = make_optimizer(model, config)
    resolved = training_precision(config)
    bags = 30 * crops
    abnormal = torch.randn(bags, 32, dim, device=device)
    normal = torch.randn(bags, 32, dim, device=device)
    labels = torch.randint(-1, 2, (2 * bags, 32), device=device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    def step():
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=resolved == "bf16"):
            scores = model(torch.cat([abnormal, normal])).float()
        loss = phase_loss(ar_mil_loss(scores[:bags], scores[bags:], 0.1), scores, labels, 0.5)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    result = {
        "feature_dim": dim, "crops": crops, "bags_per_step": 2 * bags, "steps": steps,
        "steps_per_s": round(steps / seconds, 4), "s_per_step": round(seconds / steps, 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": device, "threads": torch.get_num_threads(), "precision": resolved,
        "adam": "loop" if adam == "loop" else adam_implementation(torch.device(device)),
    }
    if device.startswith("cuda"):
        result["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", default="2048,1024", help="feature sizes D (default: 2048,1024)")
    parser.add_argument("--crops", default="1,10", help="crops per video: bags per step = 60 x crops (default: 1,10)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per setting (default: 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default: 1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="as vad train --precision (default: auto)")
    parser.add_argument("--adam", default="trainer", choices=("trainer", "loop"),
                        help="trainer: the trainer's Adam; loop: PyTorch's per-tensor loop (default: trainer)")
    parser.add_argument("--one", nargs=2, type=int, metavar=("D", "CROPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.steps, args.warmup, args.device, args.precision, args.adam)))
        return
    load_before = os.getloadavg()
    results = []
    for dim in (int(d) for d in args.dims.split(",")):
        for crops in (int(c) for c in args.crops.split(",")):
            out = subprocess.run([sys.executable, __file__, "--one", str(dim), str(crops), "--steps", str(args.steps),
                                  "--warmup", str(args.warmup), "--device", args.device, "--precision", args.precision,
                                  "--adam", args.adam],
                                 check=True, capture_output=True, text=True)
            results.append(json.loads(out.stdout))
            print(f"D={dim} crops={crops}: {results[-1]['steps_per_s']} steps/s", file=sys.stderr)
    print(json.dumps({"benchmark": "train", "cpu_count": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
                      "load_average_after": [round(x, 2) for x in os.getloadavg()], "results": results}, indent=1))


if __name__ == "__main__":
    main()
