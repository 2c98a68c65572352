"""How far each precision moves `vad score`'s curves from fp32, where that comes from, and what it buys.

Prints one JSON object with the machine's arithmetic (CPU model and flags, or GPU; torch; threads) and:

- "scores": per clip (tests/data/videos/*.mp4, plus the held-out clips of a `vad demo` folder
  with --demo) and per precision, the frame curve of `vad score` (score correction on) against
  fp32: max and mean |difference|, the frames that change side of 0.3 and of 0.5, the share of
  fp32 frames in the mid range 0.1-0.9 (where the detector's sigmoid is steep, so a deviation
  is largest), and seconds per clip (the model and backbone load excluded, reported apart).
- "where" (--where CLIP): the backbone's stages on the first --snippets snippets of one clip:
  the relative error ||reduced - fp32|| / ||fp32|| of each stage's output with every stage in
  the reduced precision (cumulative), and of the features with only that stage reduced; then
  the detector's share: score deviation from the fully reduced features, and from fp32
  features merely rounded to the reduced type (`x.to(torch.bfloat16).float()`), raw and corrected.
- "features": the golden clip40 i3d-r50 features (the golden generator's weights, centre crop)
  of each precision against the reference extractor: max|ours - ref| / max|ref|, mean, min cosine.

    python bench/precision.py [--model MODEL] [--demo DEMO_DIR] [--precisions fp32,bf16,fp16]
                              [--device cpu] [--where CLIP] [--snippets 6] [--no-features] [--no-scores]

Reduced precision on a CPU without native support is emulated (minutes per clip on AVX2):
run it where the precision is native, or with short clips.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from vad.extract.engine import PRECISIONS, Engine  # noqa: E402
from vad.hardware import arithmetic  # noqa: E402
from vad.models.correction import correct_scores  # noqa: E402
from vad.models.inference import score_video  # noqa: E402
from vad.pipeline.score import ScoreConfig, load_scorer  # noqa: E402

from paths import PRECISION, VIDEOS  # noqa: E402

THRESHOLDS = (0.3, 0.5)
MID_RANGE = (0.1, 0.9)


def curve_deviation(ours: np.ndarray, ref: np.ndarray) -> dict:
    """Max and mean |ours - ref| of two frame curves and the frames that change side of each threshold."""
    diff = np.abs(ours - ref)
    return {"max": round(float(diff.max()), 5), "mean": round(float(diff.mean()), 6),
            **{f"frames_crossing_{t}": int(((ours > t) != (ref > t)).sum()) for t in THRESHOLDS}}


def score_clips(model: Path, clips: list[Path], precisions: list[str], device: str) -> list[dict]:
    rows: dict[str, dict] = {str(clip): {"clip": clip.name, "precisions": {}} for clip in clips}
    curves: dict[tuple[str, str], np.ndarray] = {}
    for precision in precisions:
        started = time.perf_counter()
        scorer = load_scorer(ScoreConfig(model=model, precision=precision, device=device, decoder="pyav"))
        load_s = time.perf_counter() - started
        for clip in clips:
            started = time.perf_counter()
            curve = scorer.score(clip)
            row = rows[str(clip)]
            row.update(frames=curve.n_frames, snippets=len(curve.snippet_scores))
            row["precisions"][precision] = {"seconds": round(time.perf_counter() - started, 2), "load_s": round(load_s, 2)}
            curves[str(clip), precision] = curve.frame_scores
    for clip in clips:
        row, ref = rows[str(clip)], curves[str(clip), "fp32"]
        row["mid_range_share"] = round(float(((ref > MID_RANGE[0]) & (ref < MID_RANGE[1])).mean()), 3)
        for precision in precisions:
            if precision != "fp32":
                row["precisions"][precision].update(curve_deviation(curves[str(clip), precision], ref))
    return list(rows.values())


def store_features(model: Path, clips: list[Path], path: Path, device: str) -> None:
    """The fp32 and bf16 backbone outputs [T, crops, D] of each clip and its frame count, as
    tests/data/precision/features.npz (keys CLIP_fp32, CLIP_bf16, CLIP_frames; CLIP = file stem)."""
    arrays = {}
    for precision in ("fp32", "bf16"):
        scorer = load_scorer(ScoreConfig(model=model, precision=precision, device=device, decoder="pyav"))
        for clip in clips:
            features, summary = scorer.engine.video(clip)
            arrays[f"{clip.stem}_{precision}"] = features
            arrays[f"{clip.stem}_frames"] = np.int64(summary.n_frames)
    np.savez_compressed(path, **arrays)


def stages(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The backbone's inference form as a sequence of stages: Inception's trunk, or r50's stem and residual blocks."""
    if hasattr(model, "trunk"):
        return [(type(m).__name__ + f"[{i}]", m) for i, m in enumerate(model.trunk)]
    blocks = [m for layer in model.layers for m in (layer if isinstance(layer, torch.nn.Sequential) else [layer])]
    return [("stem", model.stem), *((type(m).__name__ + f"[{i}]", m) for i, m in enumerate(blocks))]


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b).norm() / b.norm())


def reduced_in(module: torch.nn.Module, dtype: torch.dtype, device: str) -> list:
    """Hooks that run `module` under autocast to `dtype` and hand its output on as float32."""
    state = {}

    def enter(_module, _inputs):
        state["ctx"] = torch.autocast(device, dtype=dtype)
        state["ctx"].__enter__()

    def leave(_module, _inputs, output):
        state["ctx"].__exit__(None, None, None)
        return output.float()

    return [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]


def where(model_path: Path, clip: Path, precision: str, device: str, n_snippets: int) -> dict:
    """Stage by stage, then the detector: where `precision` moves the scores of `clip`."""
    dtype = PRECISIONS[precision]
    scorer = load_scorer(ScoreConfig(model=model_path, precision="fp32", device=device, decoder="pyav"))
    engine = scorer.engine
    capture = Engine(engine.model, engine.spec, engine.plan, engine.device, 1, precision="fp32", head=lambda m, x: x.reshape(len(x), -1))
    inputs, _ = capture.video(clip)
    size = engine.plan.geometry.crop_size
    x = torch.from_numpy(inputs[:n_snippets, 0]).reshape(-1, 3, engine.plan.geometry.clip_len, size, size)  # centre crop
    net = engine.model
    named = stages(net)

    def outputs(reduce: torch.nn.Module | None = None, every: bool = False) -> tuple[list[torch.Tensor], torch.Tensor]:
        seen, handles = [], []
        for _, module in named:
            handles.append(module.register_forward_hook(lambda _m, _i, out: seen.append(out.float())))
            if every or module is reduce:
                handles[:0] = reduced_in(module, dtype, device)  # before the recording hook: it records the float32 output
        try:
            with torch.inference_mode():
                features = torch.cat([net(x[i:i + 1].to(engine.device)).float() for i in range(len(x))])
        finally:
            for handle in handles:
                handle.remove()
        per_stage = [torch.cat(seen[s::len(named)]) for s in range(len(named))]
        return per_stage, features

    ref_stages, ref = outputs()
    full_stages, full = outputs(every=True)
    only = [relative(outputs(reduce=module)[1], ref) for _, module in named]

    def scores(features: torch.Tensor, correct: bool) -> np.ndarray:
        raw = score_video(scorer.detector, features.cpu().numpy()[:, None])
        return correct_scores(raw) if correct else raw

    detector = {}
    for correct in (False, True):
        base = scores(ref, correct)
        key = "corrected" if correct else "raw"
        detector[key] = {"fp32_range": [round(float(base.min()), 4), round(float(base.max()), 4)],
                         f"{precision}_features_max_dev": round(float(np.abs(scores(full, correct) - base).max()), 5),
                         "fp32_features_rounded_max_dev": round(float(np.abs(scores(ref.to(dtype).float(), correct) - base).max()), 5)}
    return {"clip": clip.name, "precision": precision, "snippets": len(x), "backbone": engine.spec.name,
            "stages": [{"stage": name, "cumulative_rel_error": round(relative(f, r), 6), "only_this_stage_rel_error_of_features": round(o, 6)}
                       for (name, _), f, r, o in zip(named, full_stages, ref_stages, only)],
            "features_rel_error": round(relative(full, ref), 6), "features_rounded_rel_error": round(relative(ref.to(dtype), ref), 6),
            "detector": detector}


def golden_features(precisions: list[str], device: str) -> list[dict]:
    """The clip40 golden features (i3d-r50, reference extractor) of each precision, centre crop."""
    from vad.extract.cache import FeatureCache
    from vad.extract.inputs import discover
    from vad.extract.runner import ExtractConfig, run_extraction

    from golden_r50 import write_weights
    from paths import GOLDEN_R50

    reference = np.load(GOLDEN_R50 / "clip40_feats.npy")[:, 4:5]  # TenCrop index 4 = the centre crop
    items = discover([str(GOLDEN_R50 / "clip40.mp4")])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = write_weights(Path(tmp) / "r50.pth")
        for precision in precisions:
            config = ExtractConfig(weights=weights, crops=1, precision=precision, device=device, batch_size=3, workers=0)
            run_extraction(items, Path(tmp) / precision, config, progress=False)
            ours = FeatureCache(Path(tmp) / precision).load("clip40")
            diff = np.abs(ours.astype(np.float64) - reference)
            cosines = (ours * reference).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(reference, axis=-1)
            results.append({"precision": precision, "max_dev_over_max_ref": float(f"{diff.max() / np.abs(reference).max():.3g}"),
                            "mean_abs_dev": float(f"{diff.mean():.3g}"), "min_cosine": round(float(cosines.min()), 8)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=PRECISION / "demo_model.pt",
                        help="model file (default: the demo model of the tests, tests/data/precision/demo_model.pt)")
    parser.add_argument("--demo", type=Path, default=None, help="a `vad demo` output folder: also score its held-out clips")
    parser.add_argument("--clips", default=None, help="comma-separated videos instead of tests/data/videos/*.mp4")
    parser.add_argument("--precisions", default="fp32,bf16,fp16", help="fp32 first (default: %(default)s)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--where", type=Path, default=None, help="also trace the deviation stage by stage on this clip")
    parser.add_argument("--snippets", type=int, default=6, help="snippets of the --where clip (default: %(default)s)")
    parser.add_argument("--no-features", action="store_true", help="skip the golden clip40 feature deviation")
    parser.add_argument("--no-scores", action="store_true", help="skip the scores of real clips (they need the i3d-inception weights)")
    parser.add_argument("--store-features", type=Path, default=None, metavar="NPZ",
                        help="only write the fp32 and bf16 backbone outputs of the clips here (how tests/data/precision/features.npz is made)")
    args = parser.parse_args()
    precisions = args.precisions.split(",")
    if precisions[0] != "fp32":
        parser.error("--precisions must start with fp32, the reference")
    clips = [Path(c) for c in args.clips.split(",")] if args.clips else sorted(VIDEOS.glob("*.mp4"))
    if args.demo:
        clips += sorted((args.demo / "data/test/videos").rglob("*.mp4"))
    if args.store_features:
        store_features(args.model, clips, args.store_features, args.device)
        return
    device = torch.device(args.device)
    out = {"bench": "precision", "arithmetic": arithmetic(device), "model": str(args.model)}
    if not args.no_scores:
        out["scores"] = score_clips(args.model, clips, precisions, args.device)
    if args.where:
        out["where"] = [where(args.model, args.where, p, args.device, args.snippets) for p in precisions[1:]]
    if not args.no_features:
        out["features"] = golden_features(precisions, args.device)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
