"""A training run, owned by the Trainer: its settings and seeds, checkpoints and resume, the
evaluation after every iteration, metrics.json and the log, the health check, and the model
file with its provenance. `vad.train` and `vad train` are thin layers over it.

    from vad.models import Trainer, TrainConfig

    run = Trainer(TrainConfig(iterations=4), out="run/").fit("cache/", "labels.csv")
    run.model, run.metrics, run.health
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vad import home
from vad.errors import ConfigError, RunFailure, VadError
from vad.extract.cache import FeatureCache, FrameLayout
from vad.files import atomic_write_json
from vad.hardware import arithmetic
from vad.models.config import TrainConfig, training_precision
from vad.models.data import TrainingSet, load_training_set
from vad.models.detector import ARMSDetector
from vad.models.evaluate import cache_frame_counts, cache_layouts, evaluate_scores, score_cache
from vad.models.health import describe, health
from vad.models.io import load_model, save_model
from vad.models.trainer import IterationResult, ResumeState, train
from vad.tables import read_gt, read_labels

log = logging.getLogger("vad")

PathLike = str | Path
# Called after every iteration with its result and its metrics (which it may add to), before the
# checkpoint and metrics.json are written.
Callback = Callable[[IterationResult, dict], None]
EVAL_KEYS = ("auc", "ap", "ap_trapezoid", "score_gap", "auc_abnormal", "ap_abnormal", "spread_abnormal", "false_alarm_rate", "monitors")


@dataclass
class Run:
    """A training run's folder: OUT/model.pt, OUT/iter_<k>.pt, OUT/metrics.json, OUT/train.log."""

    out: Path
    config: TrainConfig
    metrics: list[dict]  # one entry per finished iteration, as in metrics.json
    health: dict  # models/health.py: flat iterations, lambda runaway, live units, label agreement, warnings

    @property
    def model(self) -> Path:
        return self.out / "model.pt"

    @property
    def final(self) -> dict:
        return self.metrics[-1]


@dataclass(frozen=True)
class Evaluation:
    """Held-out videos with frame ground truth, scored after every iteration."""

    cache: FeatureCache
    videos: list[str]  # in the labels' order: the order their frames are concatenated in
    layouts: dict[str, FrameLayout]  # each video's frames (extract/cache.py FrameLayout)
    gt: dict

    @classmethod
    def from_files(cls, labels: PathLike, gt: PathLike, cache: FeatureCache) -> Evaluation:
        videos = list(read_labels(labels, cache.video_ids()))
        layouts = cache_layouts(cache, videos)
        return cls(cache, videos, layouts, read_gt(gt, cache.video_ids(), {v: layout.n_frames for v, layout in layouts.items()}))

    @property
    def frame_counts(self) -> dict[str, int]:
        return {video: layout.n_frames for video, layout in self.layouts.items()}

    def __call__(self, model: ARMSDetector, progress: bool = False) -> dict:
        raw = score_cache(model, self.cache, self.videos, progress=progress)
        corrected = evaluate_scores(raw, self.layouts, self.gt, self.videos, correction=True)
        uncorrected = evaluate_scores(raw, self.layouts, self.gt, self.videos, correction=False)
        return {**corrected, "uncorrected": {k: uncorrected[k] for k in EVAL_KEYS}}


def resolve_device(device: str) -> str:
    """The device name training and evaluation use, checked as extraction checks it."""
    from vad.extract.engine import resolve_device as resolve

    return str(resolve(device))


class Trainer:
    """Trains the ARMS detector (or a baseline, per config.schedule) into a run folder.

    config: the TrainConfig (default: TrainConfig(); its device is resolved here); out: the run
    folder (default runs/<timestamp>); callbacks: see Callback; command:
    what the model's provenance records as the command that trained it (default: sys.argv);
    generated_footage: the training videos are generated (`vad score` then warns).
    """

    def __init__(self, config: TrainConfig | None = None, *, out: PathLike | None = None, progress: bool = True,
                 callbacks: Sequence[Callback] = (), command: str | None = None, generated_footage: bool = False):
        if config is not None and not isinstance(config, TrainConfig):
            raise ConfigError(f"Trainer: config takes a TrainConfig, got {type(config).__name__} (vad.train takes settings as keywords)")
        config = (config or TrainConfig()).validate()
        self.config = dataclasses.replace(config, device=resolve_device(config.device))
        self.out = Path(out) if out is not None else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        self.progress, self.callbacks = progress, tuple(callbacks)
        self.command = command if command is not None else shlex.join(sys.argv)
        self.generated_footage = generated_footage

    def fit(self, cache: PathLike, labels: PathLike, *, eval_cache: PathLike | None = None, eval_labels: PathLike | None = None,
            gt: PathLike | None = None, train_gt: PathLike | None = None, resume: bool = False) -> Run:
        """Train on the cached features of the videos in `labels` (CSV `video,label`).

        With `eval_labels` and `gt` every iteration is evaluated on `eval_cache` (default:
        `cache`); `train_gt` (frame GT of training videos) adds pseudo-label precision;
        `resume=True` continues the run in `out` after its last finished iteration.
        """
        features = FeatureCache(cache)
        video_labels = read_labels(labels, features.video_ids())
        if (eval_labels is None) != (gt is None):
            raise ConfigError("--eval-labels and --gt go together")
        evaluation = None if eval_labels is None else Evaluation.from_files(eval_labels, gt, FeatureCache(eval_cache) if eval_cache else features)
        # frames of the GT's videos, so an interval past its video or pooled segments without frame counts stop here
        training_gt = read_gt(train_gt, video_labels, cache_frame_counts(features, _listed(train_gt, video_labels))) if train_gt else None
        history: list[dict] = []
        state = None
        if resume:
            state, history = self._resume()
        elif (self.out / "metrics.json").exists() or (self.out / "model.pt").exists():
            raise VadError(f"--out {self.out}: holds an earlier run; use --resume or another folder")
        self.out.mkdir(parents=True, exist_ok=True)
        with _log_file(self.out / "train.log"):
            data = load_training_set(features, video_labels, self.config.segments, progress=self.progress)
            summary = self._train(features, data, evaluation, training_gt, history, state)
        return Run(self.out, self.config, history, summary)

    # -- the parts of a run ----------------------------------------------------------------------
    def _resume(self) -> tuple[ResumeState | None, list[dict]]:
        metrics_path = self.out / "metrics.json"
        if not metrics_path.is_file():
            raise VadError(f"--resume: {metrics_path} not found; nothing to resume")
        previous = json.loads(metrics_path.read_text())
        mine = {k: v for k, v in self.config.to_dict().items() if k != "device"}
        # Read as a TrainConfig: a run written before the config held the whole detector lacks keys that were the defaults.
        theirs = {k: v for k, v in TrainConfig.from_dict(previous.get("config", {})).to_dict().items() if k != "device"}
        if mine != theirs:
            changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise VadError(f"--resume: settings differ from the run in {self.out}: {', '.join(changed)}")
        history = previous.get("iterations", [])
        if not history:
            return None, []
        last = history[-1]["iteration"]
        if last >= len(self.config.plan()):
            raise VadError(f"--resume: all {last} iterations of the run in {self.out} are finished")
        model, payload = load_model(self.out / f"iter_{last}.pt", self.config.device)
        ratios = payload.get("ratios", {})
        return ResumeState(last, model, np.array(list(ratios.values()), dtype=np.float64)), history

    def provenance(self, cache: FeatureCache, data: TrainingSet) -> dict:
        """What a model file says about where it came from (shown by `vad score --format json`)."""
        return {
            "backbone": cache.config.get("backbone"),
            "train_videos": {"normal": len(data.normal_ids), "abnormal": len(data.abnormal_ids),
                             "total": len(data.normal_ids) + len(data.abnormal_ids)},
            "cache": str(Path(cache.root).resolve()),
            "command": self.command,
            "generated_footage": self.generated_footage,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "vad_version": home.installed_version(),
        }

    def _train(self, cache: FeatureCache, data: TrainingSet, evaluation: Evaluation | None, training_gt: dict | None,
               history: list[dict], state: ResumeState | None) -> dict:
        config, out = self.config, self.out
        feature = {k: v for k, v in cache.config.items() if k != "format"}
        computed = arithmetic(torch.device(config.device), features=",".join(data.feature_precisions), training=training_precision(config))
        origin = {**self.provenance(cache, data), "arithmetic": computed}
        log.info("training on %d normal + %d abnormal videos, %d crops, D=%d; plan %s; device %s",
                 len(data.normal_ids), len(data.abnormal_ids), data.crops, data.feature_dim, ",".join(config.plan()), config.device)
        if state is not None and len(state.ratios) != len(data.abnormal_ids):
            raise VadError(f"--resume: the checkpoint holds {len(state.ratios)} abnormal ratios, the labels {len(data.abnormal_ids)} abnormal videos")

        def record(summary: dict | None = None) -> None:
            atomic_write_json(out / "metrics.json", {"config": config.to_dict(), "feature": feature, "arithmetic": computed, "iterations": history,
                                                     **({"health": summary} if summary is not None else {})})

        def on_iteration(result: IterationResult) -> None:
            metrics = dict(result.metrics)
            if evaluation is not None:
                metrics["eval"] = evaluation(result.model, self.progress)
            for callback in self.callbacks:
                callback(result, metrics)
            save_model(out / f"iter_{result.iteration}.pt", result.model, feature=feature, provenance=origin, train=config.to_dict(),
                       iteration=result.iteration, phase=result.phase, ratios=_ratios(data, result.ratios))
            history.append(metrics)
            record()
            log.info("%s", iteration_summary(result, metrics))

        try:
            final = train(config, data, on_iteration=on_iteration, resume=state, progress=self.progress, train_gt=training_gt)
        except VadError as exc:  # a cache entry or checkpoint that breaks mid-run: the finished iterations are kept
            raise RunFailure(str(exc)) from None
        summary = health(history)
        log.info("%s", describe(summary))
        for warning in summary["warnings"]:
            log.warning("warning: %s", warning)
        record(summary)
        save_model(out / "model.pt", final.model, feature=feature, provenance={**origin, "health": summary}, train=config.to_dict(),
                   iteration=final.iteration, phase=final.phase, ratios=_ratios(data, final.ratios))
        return summary


def _listed(gt: PathLike, videos) -> list[str]:
    """The videos of `videos` that have rows in the GT file (unknown ones are read_gt's to refuse)."""
    listed = read_gt(gt)
    return [video for video in videos if video in listed]


def _ratios(data: TrainingSet, ratios: np.ndarray) -> dict[str, float]:
    return {video: float(r) for video, r in zip(data.abnormal_ids, ratios)}


def _optional(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def iteration_summary(result: IterationResult, metrics: dict) -> str:
    """The log line of one finished iteration."""
    text = (f"iteration {result.iteration} ({result.phase}): loss {metrics['loss']:.4f}, lambda mean {metrics['lambda']['mean']:.3f} "
            f"(guard fired {metrics['lambda']['guard_fired']}), abnormal within-video std {metrics['train_monitors']['abnormal_within_video_std']:.3f} "
            f"(train mode {metrics['train_mode']['abnormal_within_video_std']:.3f}), saturated logits {metrics['pre_sigmoid']['saturated_share']:.0%}")
    e = metrics.get("eval")
    if e is not None and e["auc"] is not None:
        text += f", AUC {e['auc']:.4f}, AP {e['ap']:.4f}, AUC_A {_optional(e['auc_abnormal'])}, spread {_optional(e['spread_abnormal'])}"
    return text


@contextlib.contextmanager
def _log_file(path: Path):
    """The run's log file gets INFO even when stderr shows only warnings: the stderr handlers
    keep their level, and the 'vad' logger lets INFO through to the file."""
    root = logging.getLogger()
    pinned = [h for h in root.handlers if h.level == logging.NOTSET]
    for h in pinned:
        h.setLevel(root.level)
    previous = log.level
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    log.addHandler(handler)
    log.setLevel(min(root.level, logging.INFO))
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()
        log.setLevel(previous)
        for h in pinned:
            h.setLevel(logging.NOTSET)

