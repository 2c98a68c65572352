"""Deviation of each autocast precision from the fp32 golden clip40 features, on any device.

`vad extract` (the runner, reference profile, centre crop) on tests/data/golden/i3d-r50/clip40.mp4
with the golden generator's weights, compared with clip40_feats.npy (the reference extractor's
float32 features): max|ours - ref| / max|ref| (the measure of docs/backbones.md, Tolerances; fp32
must stay <= 1e-5), mean |ours - ref| and the smallest per-snippet cosine. Prints one JSON object.

    python bench/precision.py [--device cpu|cuda] [--precisions fp32,bf16,fp16] [--crops 1]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from vad.extract.cache import FeatureCache  # noqa: E402
from vad.extract.inputs import discover  # noqa: E402
from vad.extract.runner import ExtractConfig, extract  # noqa: E402

from golden_r50 import write_weights  # noqa: E402
from paths import GOLDEN_R50  # noqa: E402


def deviation(ours: np.ndarray, ref: np.ndarray) -> dict:
    diff = np.abs(ours.astype(np.float64) - ref)
    cosines = (ours * ref).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(ref, axis=-1)
    return {"max_dev_over_max_ref": float(f"{diff.max() / np.abs(ref).max():.3g}"), "mean_abs_dev": float(f"{diff.mean():.3g}"),
            "min_cosine": round(float(cosines.min()), 8)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", default="fp32,bf16,fp16")
    parser.add_argument("--crops", type=int, default=1, choices=[1, 10])
    args = parser.parse_args()
    reference = np.load(GOLDEN_R50 / "clip40_feats.npy")
    reference = reference[:, 4:5] if args.crops == 1 else reference  # TenCrop index 4 = the centre crop
    items = discover([str(GOLDEN_R50 / "clip40.mp4")])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = write_weights(Path(tmp) / "r50.pth")
        for precision in args.precisions.split(","):
            config = ExtractConfig(weights=weights, crops=args.crops, precision=precision, device=args.device, batch_size=3, workers=0)
            extract(items, Path(tmp) / precision, config, progress=False)
            results.append({"precision": precision, **deviation(FeatureCache(Path(tmp) / precision).load("clip40"), reference)})
    print(json.dumps({"bench": "precision", "device": args.device, "backbone": "i3d-r50", "crops": args.crops,
                      "reference": "golden/i3d-r50/clip40_feats.npy", "results": results}, indent=1))


if __name__ == "__main__":
    main()
