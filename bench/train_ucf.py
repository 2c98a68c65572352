"""ARMS `ucf` preset on synthetic UCF-Crime-sized features: wall time of one epoch, or the full preset.

UCF-Crime's training split has 1,610 videos (800 normal, 810 abnormal); with 10 crops and
D = 2048 the pooled training bags ([N, 10, 32, 2048] float32, what `load_training_set` builds
from a cache) take 4.2 GB. They are generated here in memory, not read from disk, so the figure
is the trainer's: `vad.models.trainer.train` with `make_config("ucf", ...)` as `vad train
--preset ucf` runs it. Loading and pooling a real cache is not included.

One epoch = ceil(810 / 30) = 27 steps of 30 normal + 30 abnormal videos (600 bags of 32
segments). Every iteration also scores all training videos once (pseudo labels, monitors);
that is timed apart. The full preset is K = 6 iterations x 50 epochs (bst, ham, as x 4).

    python bench/train_ucf.py [--device cpu] [--epochs 1]             # one epoch (+ scoring)
    python bench/train_ucf.py --device cuda --full                      # the whole preset
    python bench/train_ucf.py --device cuda --full --precision fp32     # ... without bf16 autocast
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np
import torch

N_NORMAL, N_ABNORMAL, CROPS, DIM, SEGMENTS = 800, 810, 10, 2048, 32


def synthetic_training_set(n_normal: int, n_abnormal: int, crops: int, dim: int, seed: int = 0):
    """Pooled bags like a UCF-sized cache: noise, plus a shifted event in part of each abnormal bag."""
    from vad.models.data import TrainingSet

    generator = torch.Generator().manual_seed(seed)
    normal = torch.randn(n_normal, crops, SEGMENTS, dim, generator=generator)
    abnormal = torch.randn(n_abnormal, crops, SEGMENTS, dim, generator=generator)
    rng = np.random.default_rng(seed)
    for i in range(n_abnormal):  # an event over 10-50% of the segments, as weak labels expect
        length = int(rng.integers(3, 17))
        start = int(rng.integers(0, SEGMENTS - length + 1))
        abnormal[i, :, start:start + length, : dim // 8] += 0.5
    normal_ids = [f"Normal_{i:04d}" for i in range(n_normal)]
    abnormal_ids = [f"Abnormal_{i:04d}" for i in range(n_abnormal)]
    lengths = rng.integers(50, 2000, n_normal + n_abnormal)  # snippets per video (UCF: ~1 min to ~1 h)
    n_snippets = dict(zip(normal_ids + abnormal_ids, map(int, lengths)))
    return TrainingSet(normal_ids=normal_ids, abnormal_ids=abnormal_ids, normal=normal, abnormal=abnormal,
                       n_snippets=n_snippets, n_frames={k: 16 * v for k, v in n_snippets.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the one timed bst iteration (without --full)")
    parser.add_argument("--full", action="store_true", help="the whole ucf preset: 6 iterations x 50 epochs")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="as vad train --precision (default: auto)")
    parser.add_argument("--videos-scale", type=float, default=1.0, help="fraction of the 1,610 videos (smoke runs)")
    args = parser.parse_args()
    from vad.models.config import make_config
    from vad.models.trainer import crop_average_scores, train

    started = time.perf_counter()
    data = synthetic_training_set(round(N_NORMAL * args.videos_scale), round(N_ABNORMAL * args.videos_scale), CROPS, DIM)
    generate_s = time.perf_counter() - started
    if args.full:
        config = make_config("ucf", device=args.device, precision=args.precision)
    else:  # epochs timed, no floor
        config = make_config("ucf", device=args.device, precision=args.precision, epochs=args.epochs, min_steps=0, phases=("bst",), iterations=1)
    iterations = []
    clock = [time.perf_counter()]

    def on_iteration(result):
        now = time.perf_counter()
        iterations.append({"iteration": result.iteration, "phase": result.phase, "wall_s": round(now - clock[0], 2)})
        clock[0] = now

    started = time.perf_counter()
    result = train(config, data, on_iteration=on_iteration, progress=False)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    train_s = time.perf_counter() - started
    # Scoring every training video once, as each iteration does after its epochs.
    started = time.perf_counter()
    with torch.inference_mode():
        model = result.model
        crop_average_scores(model, data.abnormal.to(args.device))
        crop_average_scores(model, data.normal.to(args.device))
    score_s = time.perf_counter() - started
    steps_per_epoch = -(-max(len(data.normal_ids), len(data.abnormal_ids)) // config.batch_videos)
    out = {
        "bench": "train_ucf", "device": args.device, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "videos": len(data.normal_ids) + len(data.abnormal_ids), "crops": CROPS, "feature_dim": DIM,
        "bags_gb": round((data.normal.numel() + data.abnormal.numel()) * 4 / 1e9, 2), "generate_s": round(generate_s, 1),
        "preset": "ucf", "precision": result.metrics["precision"], "optimizer": result.metrics["optimizer"],
        "iterations_run": len(iterations), "epochs_per_iteration": config.epochs,
        "steps_per_epoch": steps_per_epoch, "train_wall_s": round(train_s, 2), "score_all_videos_s": round(score_s, 2),
        "iterations": iterations,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    if not args.full:
        epoch_s = (train_s - score_s) / config.epochs
        out["epoch_s"] = round(epoch_s, 2)
        # the whole preset from these figures: K = 6 iterations of 50 epochs and one scoring pass each
        out["full_preset_estimate_s"] = round(6 * (50 * epoch_s + score_s), 1)
    if args.device.startswith("cuda"):
        out["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
