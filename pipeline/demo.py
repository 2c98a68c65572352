"""`vad demo`: the whole pipeline, offline, on generated surveillance footage.

generate clips (vad.synth) -> extract Inception-I3D features -> train ARMS -> evaluate on
held-out clips -> score raw held-out videos into curves, plots and an HTML report
(OUT/report/index.html). Each step calls the Python API (vad.pipeline.api) that the `vad`
commands call, so the demo exercises the real product.
"""
from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("vad")


@dataclass(frozen=True)
class DemoConfig:
    out: Path  # every file of the run goes here; only the default-model record goes to the data folder (vad.home)
    train_clips: tuple[int, int] = (14, 14)  # normal, abnormal training clips
    test_clips: tuple[int, int] = (5, 5)  # normal, abnormal held-out clips
    n_frames: tuple[int, int] = (96, 144)  # clip length range (frames at 25 fps)
    size: tuple[int, int] = (320, 240)  # UCF-Crime-like resolution
    crops: int = 1  # centre crop: 10x cheaper on CPU; the events are staged mid-frame
    epochs: int = 40  # per iteration
    min_steps: int | None = None  # floor on optimiser steps per iteration; None: the trainer's (28 clips make 1 step per epoch)
    # Xavier weights (RTFM's, the trainer's default) saturate on these Inception features: every
    # score of the first iteration sank to ~0 (spread 0.003; bench/RESULTS.md, "The demo").
    init: str = "torch"
    iterations: int = 4  # 1 BST, 1 HAM, 2 AS
    lr: float = 1e-3
    lambda_small: float = 0.1
    lambda_large: float = 0.4
    # On 28 clips the gated attention detector does not reach the conv + MLP detector: held-out
    # AUC 0.692 / 0.597 against 0.777 / 0.780 (seeds 0 / 1, 40 steps; bench/RESULTS.md, "The demo").
    attention: bool = False
    score_clips: int = 2  # held-out abnormal clips scored from raw video, with plots
    seed: int = 0
    device: str = "auto"
    progress: bool = True  # progress bars on stderr

    def training_settings(self) -> dict:
        """The `api.train` settings of the demo's detector, also used by bench/train_precision.py."""
        return dict(epochs=self.epochs, min_steps=self.min_steps, iterations=self.iterations, lr=self.lr, lambda_small=self.lambda_small,
                    lambda_large=self.lambda_large, seed=self.seed, detector={"init": self.init, "attention": self.attention})


# A reduced demo for tests and impatient users: same steps, tiny data.
QUICK = dict(train_clips=(3, 3), test_clips=(2, 2), n_frames=(32, 48), epochs=3, min_steps=0, iterations=3, score_clips=1)


def run_demo(config: DemoConfig) -> dict:
    from vad.errors import RunFailure
    from vad.files import atomic_write_bytes
    from vad.pipeline import api
    from vad.pipeline.report import IndexEntry, report_threshold, write_index, write_report
    from vad.pipeline.score import gt_for_video, plot_scores, write_csv
    from vad.synth import make_dataset
    from vad.tables import read_gt

    out = config.out
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 1)
        return now

    log.info("1/5 generating surveillance-like clips in %s", out / "data")
    train = make_dataset(out / "data/train", *config.train_clips, seed=config.seed, size=config.size, n_frames=config.n_frames, progress=config.progress)
    test = make_dataset(out / "data/test", *config.test_clips, seed=config.seed + 1000, size=config.size, n_frames=config.n_frames, progress=config.progress)
    mark = lap("generate", started)

    log.info("2/5 extracting Inception-I3D (Kinetics-400) features")
    for split, data in (("train", train), ("test", test)):
        report = api.extract_features(data.videos_dir, out / f"cache/{split}", backbone="i3d-inception", crops=config.crops,
                             device=config.device, progress=config.progress)
        if report.failed:
            raise RunFailure(f"demo: {len(report.failed)} generated clip(s) failed to extract: {report.failed[0][1]}")
    mark = lap("extract", mark)

    log.info("3/5 training ARMS (BST -> HAM -> AS)")
    run = api.train(
        out / "cache/train", train.labels_csv, out=out / "run", eval_cache=out / "cache/test", eval_labels=test.labels_csv,
        gt=test.gt_csv, train_gt=train.gt_csv, generated_footage=True, device=config.device, progress=config.progress,
        **config.training_settings(),
    )
    mark = lap("train", mark)

    log.info("4/5 evaluating on %d held-out clips", sum(config.test_clips))
    evaluation = dict(model=run.model, cache=out / "cache/test", labels=test.labels_csv, gt=test.gt_csv, device=config.device,
                      progress=config.progress)
    metrics = api.evaluate(**evaluation)
    raw = api.evaluate(**evaluation, correction=False)
    probe = supervised_probe_auc(out / "cache/train", train, out / "cache/test", test)
    (out / "eval.json").write_text(json.dumps({"corrected": metrics, "raw": raw, "supervised_probe_auc": probe}, indent=1) + "\n")
    mark = lap("eval", mark)

    log.info("5/5 scoring raw held-out videos into CSV curves, plots and an HTML report")
    scorer = api.load_scorer(run.model, threshold=0.5, device=config.device)
    gt = read_gt(test.gt_csv)
    abnormal = [clip for clip in test.clips if clip.label == 1][: config.score_clips]
    normal = [clip for clip in test.clips if clip.label == 0][:1]
    scored, pages = [], []
    for clip in abnormal + normal:
        name = clip.video.replace("/", "_")
        csv_path, png_path = out / "scores" / f"{name}.csv", out / "scores" / f"{name}.png"
        curve = scorer.score(clip.path, progress=config.progress)
        text = io.StringIO()
        write_csv(curve, text)
        atomic_write_bytes(csv_path, text.getvalue().encode())
        truth = gt_for_video(gt, clip.path)
        plot_scores(curve, scorer, png_path, truth)
        page = write_report(curve, scorer, out / "report" / f"{name}.html", gt=truth, progress=config.progress)
        pages.append(IndexEntry.of(curve, page, report_threshold(scorer)))
        scored.append({"video": clip.video, "kind": clip.kind, "gt": [list(i) for i in clip.gt], "csv": str(csv_path), "plot": str(png_path),
                       "html": str(page)})
    index = write_index(pages, out / "report" / "index.html", title="vad demo: held-out clips")
    log.info("report: %s (open it in a browser)", index)
    lap("score", mark)

    summary = {
        "out": str(out),
        "auc": metrics["auc"],
        "auc_without_correction": raw["auc"],
        "supervised_probe_auc": probe,
        "ap": metrics["ap"],
        "score_gap": metrics["score_gap"],
        "test_videos": metrics["n_videos"],
        "model": str(run.model),
        "metrics": str(run.out / "metrics.json"),
        "scored": scored,
        "report": str(index),
        "seconds": {**timings, "total": round(time.perf_counter() - started, 1)},
    }
    # Recorded before the summary is written, so that summary.json never names a record that failed.
    summary["default_model_record"] = str(_record_default_model(run.model))
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def supervised_probe_auc(train_cache: Path, train, test_cache: Path, test) -> float | None:
    """Frame AUC on the held-out clips of a logistic regression fitted to *snippet* labels.

    Not part of the method (it sees the training clips' frame ground truth, which ARMS never
    does): a reference for how well these features separate the events at all, so that a weak
    demo AUC can be told apart from a weak trainer.
    """
    from sklearn.linear_model import LogisticRegression

    from vad.extract.cache import FeatureCache
    from vad.extract.preprocess import CLIP_LEN
    from vad.models.evaluate import cache_frame_counts, evaluate, frame_labels
    from vad.tables import read_gt

    def snippets(cache_dir: Path, data) -> tuple[np.ndarray, np.ndarray, dict, dict]:
        cache = FeatureCache(cache_dir)
        ids = [clip.video for clip in data.clips]
        counts = cache_frame_counts(cache, ids)
        gt = read_gt(data.gt_csv, ids, counts)
        features, labels = [], []
        for video in ids:
            feats = cache.load(video).mean(axis=1)  # crops averaged
            frames = np.pad(frame_labels(gt.get(video, []), counts[video]), (0, CLIP_LEN * len(feats) - counts[video]))
            features.append(feats)
            labels.append(frames.reshape(len(feats), CLIP_LEN).mean(axis=1) >= 0.5)
        return np.concatenate(features), np.concatenate(labels), counts, gt

    x_train, y_train, _, _ = snippets(train_cache, train)
    if y_train.all() or not y_train.any():
        return None
    probe = LogisticRegression(C=1.0, max_iter=2000).fit(x_train, y_train)
    cache = FeatureCache(test_cache)
    ids = [clip.video for clip in test.clips]
    _, _, counts, gt = snippets(test_cache, test)
    scores = {video: probe.predict_proba(cache.load(video).mean(axis=1))[:, 1] for video in ids}
    return evaluate(scores, counts, gt, ids)["auc"]


def _record_default_model(model: Path) -> Path:
    """Make the demo's model the one `vad score` uses without --model; returns the record's path.

    The record lives in the user's data folder (<data>/default_model.json), never in the installed
    package: one user's demo must not become everyone's default on a shared install."""
    from vad.files import atomic_write_json
    from vad.home import default_model_record, unwritable

    record = default_model_record()
    try:
        atomic_write_json(record, {"model": str(model.resolve())})
    except OSError as exc:
        raise unwritable(record, exc) from None
    log.info("recorded %s as the default model of `vad score` (%s)", model, record)
    return record
