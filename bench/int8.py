"""What does the int8 backbone (`vad export --format openvino --int8`) cost in accuracy? Paired runs on a `vad demo` folder.

1. Trains one detector per seed on DEMO/cache/train (the demo's fp32 Inception-I3D features) with
   the demo's own settings (DemoConfig.training_settings(): conv + MLP, PyTorch initialisation,
   BST -> HAM -> AS), on the CPU. No evaluation set is passed to training: the model is the last
   iteration either way, and the held-out videos are touched only in step 4.
2. Exports the seed-0 model once to OpenVINO with an int8 backbone (pipeline/export.py export_model,
   what `vad export --format openvino --int8 --calibrate DEMO/data/train/videos` runs), calibrated
   on the demo's TRAINING videos only, --snippets (300) and --held-out (50) asked for; the export
   records how many it really got and the deviation on its held-out snippets. The backbone does not
   depend on the detector, so all seeds share it.
3. Features of the held-out test videos (DEMO/cache/test's entries, their source videos):
   fp32 = the cache itself (torch fp32, what `vad score` and `vad eval` use by default); int8 = the
   int8 backbone run by OpenVINO through vad's extraction engine (Engine.video, the model's snippet
   plan: crops, geometry, JPEG profile), as `vad score --model EXPORT` does. Sanity checks on the
   first test video: the torch fp32 backbone and an fp32 OpenVINO export of the same model, both
   through Engine.video, must match the cache within 1e-4 of max|cache| (so the only difference
   between the two feature sets is the quantization).
4. Evaluates every seed's detector on both feature sets with vad's evaluation code: raw scores as
   `vad eval` computes them (models/evaluate.py score_video per video, averaged over crops), then
   evaluate_scores with the score correction, frame layouts and GT of the cache (api.evaluate's
   path; the fp32 result is checked equal to api.evaluate on the cache). Reports auc, auc_abnormal
   (AUC on the frames of abnormal videos only) and spread_abnormal per seed and precision, their
   means, the paired differences int8 - fp32 (mean, 95% t-interval over seeds, scipy.stats.t),
   feature agreement on the test videos, how far int8 moves each seed's snippet scores (raw and
   corrected: max, mean abs and mean signed difference, share of alarms at 0.5 that flip), and the export's own
   recorded deviation.

The interval covers detector-training variation only: one int8 backbone (one calibration draw) is
shared by all seeds. Runs on the CPU; it times nothing (speed: bench/RUNTIMES.md, other sections).
Files go to --work and are reused by a rerun (models, export, int8 features) when present.
Prints one JSON object on stdout.

    python bench/int8.py --demo DEMO_DIR [--seeds 0,1,2] [--snippets 300] [--held-out 50] --work DIR
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vad.pipeline import api  # noqa: E402
from vad.pipeline.demo import DemoConfig  # noqa: E402

from ablation import paired_differences  # noqa: E402

KEYS = ("auc", "auc_abnormal", "spread_abnormal", "false_alarm_rate", "score_gap")  # the last two: vad eval's, for the score shift
SANITY_TOLERANCE = 1e-4  # of max|cache|

log = logging.getLogger("bench.int8")


def train_seed(demo: Path, seed: int, work: Path) -> Path:
    """The seed's detector, trained on the demo's fp32 training cache with the demo's settings."""
    out = work / f"seed{seed}"
    if (out / "model.pt").is_file():
        log.info("seed %d: reusing %s", seed, out / "model.pt")
        return out / "model.pt"
    log.info("seed %d: training on %s", seed, demo / "cache/train")
    train = demo / "data/train"
    run = api.train(demo / "cache/train", train / "labels.csv", out=out, train_gt=train / "gt.csv", generated_footage=True,
                    device="cpu", progress=False, command="bench/int8.py", **DemoConfig(out=demo, seed=seed).training_settings())
    return run.model


def export(model: Path, out: Path, fmt_int8: bool, calibrate: Path, snippets: int, held_out: int):
    from vad.pipeline.export import ExportConfig, export_model, is_export, read_export

    if is_export(out):
        log.info("reusing the export %s", out)
        return read_export(out)
    log.info("exporting %s to OpenVINO (%s) into %s", model, "int8" if fmt_int8 else "fp32", out)
    config = ExportConfig(format="openvino", int8=fmt_int8, calibrate=(calibrate,) if fmt_int8 else (), snippets=snippets,
                          held_out=held_out, overwrite=True)
    return export_model(model, out, config, progress=False)


def engine_for(network, feature: dict, spec):
    import torch

    from vad.extract.engine import Engine, geometry_on_device
    from vad.pipeline.network import snippet_plan

    device = torch.device("cpu")
    plan = snippet_plan(spec, feature, "auto", geometry_on_device("auto", device))
    return Engine(network, spec, plan, device, 4)


def openvino_engine(exported):
    import torch

    from vad.extract.backbones import get_backbone
    from vad.runtimes import load_network

    spec = get_backbone(exported.manifest["backbone"]["name"])
    return engine_for(load_network("openvino", exported.path("backbone"), torch.device("cpu")), exported.feature, spec)


def torch_engine(model: Path):
    """The torch fp32 backbone of `model`, as `vad score` loads it on the CPU."""
    import torch

    from vad.extract.engine import load_backbone
    from vad.models.io import load_model
    from vad.pipeline.network import check_weights, feature_spec

    detector, payload = load_model(model, "cpu")
    feature = payload["feature"]
    spec = feature_spec(feature, detector.config.feature_dim, model)
    weights = check_weights(spec, feature, model, None, False)
    network, _ = load_backbone(spec, weights, torch.device("cpu"), allow_unverified=False, exact=False)
    return engine_for(network, feature, spec)


def relative_gap(a: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(a - reference).max() / max(float(np.abs(reference).max()), 1e-12))


def agreement(fp32: dict[str, np.ndarray], int8: dict[str, np.ndarray]) -> dict:
    """Feature agreement of int8 with the cache over all test snippets and crops: cosine, max abs, the
    ratio of feature norms |int8| / |fp32| per snippet, and the mean elementwise shift."""
    a = np.concatenate([fp32[v].reshape(-1, fp32[v].shape[-1]) for v in fp32])
    b = np.concatenate([int8[v].reshape(-1, int8[v].shape[-1]) for v in fp32])
    cosine = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    ratio = np.linalg.norm(b, axis=1) / np.maximum(np.linalg.norm(a, axis=1), 1e-12)  # a scale bias shows here, not in the cosine
    return {"snippets": int(a.shape[0]), "cosine_mean": float(cosine.mean()), "cosine_min": float(cosine.min()),
            "max_abs": float(np.abs(a - b).max()), "max_abs_relative": relative_gap(b, a),
            "norm_ratio_mean": float(ratio.mean()), "norm_ratio_min": float(ratio.min()), "norm_ratio_max": float(ratio.max()),
            "fp32_mean": float(a.mean()), "mean_int8_minus_fp32": float((b - a).mean())}


def score_gap(fp32: dict[str, np.ndarray], int8: dict[str, np.ndarray], order: list[str]) -> dict:
    """How far int8 moves the snippet scores a user sees: raw and corrected (final_scores, as `vad eval`
    and `vad score` give them), max and mean abs difference, and the share of snippets whose alarm at
    0.5 (ALARM_THRESHOLD) flips."""
    from vad.models.evaluate import ALARM_THRESHOLD, final_scores

    out = {}
    for name, correction in (("raw", False), ("corrected", True)):
        a, b = (np.concatenate([final[v] for v in order]) for final in (final_scores(fp32, correction), final_scores(int8, correction)))
        out[name] = {"max_abs": float(np.abs(a - b).max()), "mean_abs": float(np.abs(a - b).mean()),
                     "mean_int8_minus_fp32": float((b - a).mean()),
                     "alarm_flips": float(((a > ALARM_THRESHOLD) != (b > ALARM_THRESHOLD)).mean())}
    return out


def evaluate(model: Path, features: dict[str, np.ndarray], layouts: dict, truth: dict, order: list[str]) -> tuple[dict, dict]:
    """api.evaluate's computation (raw scores per video, then evaluate_scores with the correction) on given features."""
    from vad.models.evaluate import evaluate_scores
    from vad.models.inference import refuse_non_finite, score_video
    from vad.models.io import load_model

    detector, _ = load_model(model, "cpu")
    raw = {video: refuse_non_finite(score_video(detector, features[video]), video, str(model)) for video in order}
    return evaluate_scores(raw, layouts, truth, order, correction=True), raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, required=True, help="a finished `vad demo` output folder")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--snippets", type=int, default=300, help="calibration snippets asked for (vad export --snippets)")
    parser.add_argument("--held-out", type=int, default=50, help="held-out snippets asked for (vad export --held-out)")
    parser.add_argument("--work", type=Path, required=True, help="models, exports and int8 features go here (reused by a rerun)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    import torch

    from vad.extract.cache import FeatureCache
    from vad.hardware import arithmetic
    from vad.models.evaluate import cache_layouts
    from vad.tables import read_gt, read_labels

    demo, work = args.demo.resolve(), args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    test = demo / "data/test"

    # 1. one detector per seed
    models = {seed: train_seed(demo, seed, work) for seed in seeds}

    # 2. the int8 export, calibrated on the training videos only
    calibrate = demo / "data/train/videos"
    exported = export(models[seeds[0]], work / "export-int8", True, calibrate, args.snippets, args.held_out)
    backbone = exported.manifest["networks"]["backbone"]
    assert backbone["precision"] == "int8", backbone
    calibrated_on = backbone["calibration"]["videos"]
    assert all(Path(v).resolve().is_relative_to(calibrate) for v in calibrated_on), "calibrated on videos outside the training set"

    # 3. test features: the fp32 cache, and the int8 backbone through the engine
    cache = FeatureCache(demo / "cache/test")
    video_labels = read_labels(test / "labels.csv", cache.video_ids())
    order = list(video_labels)
    layouts = cache_layouts(cache, order)
    truth = read_gt(test / "gt.csv", cache.video_ids(), {video: layout.n_frames for video, layout in layouts.items()})
    sources = {video: Path(cache.meta(video)["source"]) for video in order}
    assert not {p.resolve() for p in sources.values()} & {Path(v).resolve() for v in calibrated_on}, "a test video was calibrated on"
    fp32 = {video: np.array(cache.load(video)) for video in order}

    first = order[0]
    log.info("sanity: %s through the torch fp32 and OpenVINO fp32 backbones against the cache", first)
    sanity = {"video": first, "tolerance": SANITY_TOLERANCE}
    features, _ = torch_engine(models[seeds[0]]).video(sources[first])
    sanity["torch_fp32_relative"] = relative_gap(features, fp32[first])
    ov_fp32 = export(models[seeds[0]], work / "export-fp32", False, calibrate, args.snippets, args.held_out)
    features, _ = openvino_engine(ov_fp32).video(sources[first])
    sanity["openvino_fp32_relative"] = relative_gap(features, fp32[first])
    sanity["ok"] = sanity["torch_fp32_relative"] <= SANITY_TOLERANCE and sanity["openvino_fp32_relative"] <= SANITY_TOLERANCE
    if not sanity["ok"]:
        raise SystemExit(f"sanity check failed: {sanity}")

    int8_file = work / "int8-test-features.npz"
    if int8_file.is_file():
        log.info("reusing %s", int8_file)
        with np.load(int8_file) as stored:
            int8 = {video: stored[str(i)] for i, video in enumerate(order)}
    else:
        engine = openvino_engine(exported)
        int8 = {}
        for video in order:
            log.info("int8 features of %s", video)
            int8[video], _ = engine.video(sources[video])
        np.savez(int8_file, **{str(i): int8[video] for i, video in enumerate(order)})
    for video in order:
        assert int8[video].shape == fp32[video].shape, (video, int8[video].shape, fp32[video].shape)

    # 4. the same evaluation of every seed's detector on both feature sets
    runs, score_gaps = [], {}
    for seed in seeds:
        by = {}
        for precision, features in (("fp32", fp32), ("int8", int8)):
            by[precision] = evaluate(models[seed], features, layouts, truth, order)
            runs.append({"seed": seed, "precision": precision, **{key: by[precision][0][key] for key in KEYS}})
        reference = api.evaluate(models[seed], demo / "cache/test", test / "labels.csv", test / "gt.csv", device="cpu", progress=False)
        assert all(reference[key] == by["fp32"][0][key] for key in KEYS), (reference, by["fp32"][0])
        score_gaps[seed] = score_gap(by["fp32"][1], by["int8"][1], order)
    by = {(r["precision"], r["seed"]): r for r in runs}
    means = {precision: {key: float(np.mean([by[precision, s][key] for s in seeds])) for key in KEYS} for precision in ("fp32", "int8")}
    paired = {key: paired_differences([by["int8", s][key] for s in seeds], [by["fp32", s][key] for s in seeds]) for key in KEYS}
    print(json.dumps({
        "bench": "int8", "demo": str(demo), "seeds": seeds, "training": DemoConfig(out=demo).training_settings(),
        "export": {"folder": str(exported.root), "model": str(models[seeds[0]]), "quantization": backbone.get("quantization"),
                   "calibration": {**{k: v for k, v in backbone["calibration"].items() if k != "videos"},
                                   "videos": len(calibrated_on), "asked": {"snippets": args.snippets, "held_out": args.held_out}},
                   "deviation": backbone["deviation"]},
        "sanity": sanity,
        "test_features": {"videos": len(order), **agreement(fp32, int8)},
        "scores_int8_vs_fp32": score_gaps,
        "runs": runs, "means": means, "paired_int8_minus_fp32": paired,
        "arithmetic": arithmetic(torch.device("cpu"), backbone_fp32="fp32 (torch, cache)", backbone_int8="int8 (OpenVINO)",
                                 detector="fp32"),
    }, indent=1))


if __name__ == "__main__":
    main()
