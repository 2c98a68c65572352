"""Seconds per epoch through a multi-phase ARMS run: does an epoch get slower as training goes on?

Writes a generated world (bench/worlds.py) to a temporary folder, trains `vad.models.trainer.train`
on it (bst, ham, as, ...) and times every optimiser step with a global Adam post-hook, so the
trainer is timed as it is, without instrumentation of its own. Steps are grouped into epochs
(steps per epoch = ceil(larger class / batch_videos)); per iteration the JSON holds the seconds
of each epoch, their first/last-quarter means (the first epoch left out: it holds the set-up)
and the ratio last/first (1.0: flat). It also
holds, per iteration, the share of denormal floats in weights, gradients, Adam's moments and
activations at its end, and the final iteration's frame AUC on the world's test split, so a change that speeds
training up can be checked for the same result (compare several --seed values).

    python bench/train_epochs.py [--world hard] [--feature-dim 256] [--videos 64] [--hidden-dim 1024]
                                 [--epochs 20] [--iterations 3] [--batch-videos 32] [--seed 0]
                                 [--precision auto] [--flush-denormal]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

import worlds  # noqa: E402


def epoch_seconds(stamps: list[float], start: float, per_epoch: int) -> list[float]:
    """Step end times -> seconds of each block of `per_epoch` steps (the last block may be short)."""
    edges = [start, *stamps]
    return [round(edges[min(i + per_epoch, len(stamps))] - edges[i], 4) for i in range(0, len(stamps), per_epoch)]


def summary(seconds: list[float]) -> dict:
    """First- and last-quarter means of the epochs after the first, which also holds the
    iteration's set-up (a fresh detector) and the first steps' warm-up."""
    seconds = seconds[1:] or seconds
    quarter = max(1, len(seconds) // 4)
    first, last = float(np.mean(seconds[:quarter])), float(np.mean(seconds[-quarter:]))
    return {"first_quarter_mean_s": round(first, 4), "last_quarter_mean_s": round(last, 4),
            "last_over_first": round(last / first, 3), "mean_s": round(float(np.mean(seconds)), 4)}


def subnormal_share(tensors) -> float:
    """Share of nonzero float32 values below the smallest normal number (denormals), which are
    slow on CPUs without flush-to-zero: the usual cause of steps that slow down as training goes."""
    import torch

    tiny = torch.finfo(torch.float32).tiny
    values = [t.detach().float().flatten() for t in tensors if t is not None]
    total = sum(int((v != 0).sum()) for v in values)
    small = sum(int(((v != 0) & (v.abs() < tiny)).sum()) for v in values)
    return small / total if total else 0.0


def subnormal_census(model, optimizer, bags) -> dict:
    """Denormals at the end of an iteration: in the weights, the last gradients, Adam's moments,
    and the activations (every module's output and the attention weights) on training bags."""
    import torch

    outputs = []
    handles = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for m in model.modules() if m is not model]
    with torch.no_grad():
        model.eval()
        model(bags)
        if model.config.attention:
            h = model.snippet_path(bags)
            outputs.append(model.attention(h, h, h, need_weights=True, average_attn_weights=False)[1])
    for handle in handles:
        handle.remove()
    state = [t for s in optimizer.state.values() for key, t in s.items() if key != "step"]
    return {
        "weights": subnormal_share(model.parameters()), "grads": subnormal_share(p.grad for p in model.parameters()),
        "adam_moments": subnormal_share(state),
        "activations": subnormal_share(t for out in outputs for t in (out if isinstance(out, tuple) else (out,)) if torch.is_tensor(t)),
    }


def final_auc(model, paths: worlds.WorldPaths) -> float:
    """Frame AUC of the model on the world's test split (scores corrected, as `vad eval`)."""
    from vad.extract.cache import FeatureCache
    from vad.models.evaluate import cache_frame_counts, evaluate_scores
    from vad.models.inference import score_video
    from vad.tables import read_gt, read_labels

    cache = FeatureCache(paths.cache)
    order = list(read_labels(paths.labels("test")))
    raw = {v: score_video(model, cache.load(v)) for v in order}
    return float(evaluate_scores(raw, cache_frame_counts(cache, order), read_gt(paths.gt("test")), order)["auc"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", default="hard", help="bench/worlds.py preset (default: hard)")
    parser.add_argument("--feature-dim", type=int, default=256)
    parser.add_argument("--videos", type=int, default=64, help="training videos per class (default: 64)")
    parser.add_argument("--hidden-dim", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=20, help="epochs per iteration (default: 20)")
    parser.add_argument("--iterations", type=int, default=3, help="bst, ham, then as repeated (default: 3)")
    parser.add_argument("--batch-videos", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0, help="seeds the world and the training")
    parser.add_argument("--precision", default=None, help="TrainConfig.precision, where the trainer has one")
    parser.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True) first")
    args = parser.parse_args(argv)

    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from vad.models.config import make_config
    from vad.models.data import load_training_set
    from vad.models.trainer import steps_per_epoch, train

    flushed = torch.set_flush_denormal(True) if args.flush_denormal else False
    stamps: list[float] = []
    last_optimizer = []

    def after_step(optimizer, *_):
        stamps.append(time.perf_counter())
        last_optimizer[:] = [optimizer]

    register_optimizer_step_post_hook(after_step)
    overrides = {} if args.precision is None else {"precision": args.precision}
    config = make_config(None, epochs=args.epochs, min_steps=0, iterations=args.iterations, lr=args.lr, batch_videos=args.batch_videos,
                         seed=args.seed, detector={"hidden_dim": args.hidden_dim}, **overrides)
    with tempfile.TemporaryDirectory() as work:
        world = worlds.make_world_config(args.world, feature_dim=args.feature_dim, n_train=(args.videos, args.videos))
        paths = worlds.write_world(Path(work) / "world", world, args.seed, args.world)
        from vad.extract.cache import FeatureCache
        from vad.tables import read_labels

        data = load_training_set(FeatureCache(paths.cache), read_labels(paths.labels("train")), config.segments, progress=False)
        per_epoch = steps_per_epoch(config, args.videos, args.videos)
        iterations, clock = [], [time.perf_counter()]

        def on_iteration(result):
            seconds = epoch_seconds(stamps, clock[0], per_epoch)
            census = subnormal_census(result.model, last_optimizer[0], data.abnormal[: args.batch_videos].flatten(0, 1))
            iterations.append({"iteration": result.iteration, "phase": result.phase, "steps": len(stamps),
                               "epoch_s": seconds, **summary(seconds), "subnormal_share": census,
                               "metrics_precision": result.metrics.get("precision")})
            stamps.clear()
            clock[0] = time.perf_counter()

        load_before = os.getloadavg()
        started = time.perf_counter()
        result = train(config, data, on_iteration=on_iteration, progress=False)
        wall = time.perf_counter() - started
        auc = final_auc(result.model, paths)
    print(json.dumps({
        "bench": "train_epochs", "world": args.world, "feature_dim": args.feature_dim, "videos_per_class": args.videos,
        "hidden_dim": args.hidden_dim, "batch_videos": args.batch_videos, "steps_per_epoch": per_epoch, "seed": args.seed,
        "precision": args.precision, "flush_denormal": bool(flushed), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "load_average_before": [round(x, 2) for x in load_before], "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "train_wall_s": round(wall, 1), "final_auc": round(auc, 4), "iterations": iterations,
    }, indent=1))


if __name__ == "__main__":
    main()
