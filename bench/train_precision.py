"""Does bf16 training give the fp32 result? Paired runs on the features of a `vad demo` folder.

For every seed, trains the demo's detector and settings (DemoConfig: conv + MLP, PyTorch
initialisation, 100-step floor, BST -> HAM -> AS) on DEMO/cache/train once per precision,
evaluates each on the held-out DEMO/cache/test, and prints one JSON object: per run the frame
AUC, AUC_A (frames of abnormal clips only), spread and seconds; the paired differences
(precision - fp32) with 95% t-intervals; and the machine's arithmetic (CPU model and flags).
The synthetic worlds have the same comparison in bench/ablation.py (`--runs ms,ms-bf16,arms,arms-bf16`).

    python bench/train_precision.py --demo DEMO_DIR [--seeds 0,1,2,3,4] [--precisions fp32,bf16] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vad.pipeline import api  # noqa: E402
from vad.pipeline.demo import DemoConfig  # noqa: E402

from ablation import paired_differences  # noqa: E402

KEYS = ("auc", "auc_abnormal", "spread_abnormal")


def train_once(demo: Path, seed: int, precision: str, device: str, work: Path) -> dict:
    data = {split: demo / "data" / split for split in ("train", "test")}
    started = time.perf_counter()
    run = api.train(demo / "cache/train", data["train"] / "labels.csv", out=work / f"{precision}-{seed}", generated_footage=True,
                    device=device, progress=False, command="bench/train_precision.py",
                    **{**DemoConfig(out=demo).training_settings(), "seed": seed}, precision=precision)
    seconds = time.perf_counter() - started
    metrics = api.evaluate(run.model, demo / "cache/test", data["test"] / "labels.csv", data["test"] / "gt.csv", device=device, progress=False)
    return {"seed": seed, "precision": precision, "train_s": round(seconds, 1), **{k: metrics[k] for k in KEYS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, required=True, help="a `vad demo` output folder (its caches and labels)")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--precisions", default="fp32,bf16", help="fp32 first: the reference of the paired differences")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import torch

    from vad.hardware import arithmetic

    seeds = [int(s) for s in args.seeds.split(",")]
    precisions = args.precisions.split(",")
    with tempfile.TemporaryDirectory(prefix="vad-train-precision-") as work:
        runs = [train_once(args.demo, seed, precision, args.device, Path(work)) for seed in seeds for precision in precisions]
    by = {(r["precision"], r["seed"]): r for r in runs}
    paired = {f"{p} - {precisions[0]}": {key: paired_differences([by[p, s][key] for s in seeds], [by[precisions[0], s][key] for s in seeds])
                                         for key in KEYS} for p in precisions[1:]}
    print(json.dumps({"bench": "train_precision", "demo": str(args.demo), "arithmetic": arithmetic(torch.device(args.device)),
                      "runs": runs, "paired": paired}, indent=1))


if __name__ == "__main__":
    main()
