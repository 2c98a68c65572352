"""Training throughput of the ARMS detector: optimizer steps/s and peak memory.

One step = one mini-batch of 30 normal + 30 abnormal videos, every crop of 32 segments through
the detector (docs/method.md, Training), forward + AR-MIL + pseudo-label BCE (eq. 5) + backward
+ Adam; averaging crops before the loss (the default) or not costs the same. Each (D, crops)
runs in its own process so peak RSS is its own. Prints one JSON object on stdout.

    python bench/train.py [--dims 2048,1024] [--crops 1,10] [--steps 5] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(dim: int, crops: int, steps: int, warmup: int, device: str) -> dict:
    import torch

    from vad.models.detector import build_detector
    from vad.models.losses import ar_mil_loss, phase_loss

    torch.manual_seed(0)
    model = build_detector(feature_dim=dim).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-4)
    bags = 30 * crops
    abnormal = torch.randn(bags, 32, dim, device=device)
    normal = torch.randn(bags, 32, dim, device=device)
    labels = torch.randint(-1, 2, (2 * bags, 32), device=device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    def step():
        scores = model(torch.cat([abnormal, normal]))
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
        "device": device, "threads": torch.get_num_threads(),
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
    parser.add_argument("--one", nargs=2, type=int, metavar=("D", "CROPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.steps, args.warmup, args.device)))
        return
    results = []
    for dim in (int(d) for d in args.dims.split(",")):
        for crops in (int(c) for c in args.crops.split(",")):
            out = subprocess.run([sys.executable, __file__, "--one", str(dim), str(crops), "--steps", str(args.steps),
                                  "--warmup", str(args.warmup), "--device", args.device],
                                 check=True, capture_output=True, text=True)
            results.append(json.loads(out.stdout))
            print(f"D={dim} crops={crops}: {results[-1]['steps_per_s']} steps/s", file=sys.stderr)
    print(json.dumps({"benchmark": "train", "results": results}, indent=1))


if __name__ == "__main__":
    main()
