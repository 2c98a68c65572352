"""The Python API: what the `vad` commands do, as functions; the commands are thin layers over it.

    import vad

    report = vad.extract("videos/", "cache/", backbone="i3d-inception", crops=1)
    run = vad.train("cache/", "labels.csv", out="run/", iterations=4)
    scorer = vad.load_scorer(run.model)
    curve = scorer.score("clip.mp4")
    curve.frame_scores, curve.fps, curve.intervals(0.5), curve.provenance

Errors are `vad.errors.VadError` subclasses whose message says what is wrong and where.
Settings are the fields of the typed configs: `ExtractConfig` (vad.extract.runner),
`TrainConfig` and `DetectorConfig` (vad.models), `ScoreConfig` (vad.pipeline.score).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shlex
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vad.errors import ConfigError, RunFailure, VadError

log = logging.getLogger("vad")

PathLike = str | Path


def _configure(cls, config: Mapping[str, Any], what: str):
    """cls(**config), with an unknown field a ConfigError naming the fields there are."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - names)
    if unknown:
        raise ConfigError(f"{what}: no setting {', '.join(map(repr, unknown))}; the settings are {', '.join(sorted(names))}")
    return cls(**config)


# -- extraction -----------------------------------------------------------------------------------
def extract(videos: PathLike | Iterable[PathLike], cache: PathLike, *, backend: str = "local", ray=None, progress: bool = True,
            **config):
    """Extract backbone features of `videos` (files, folders searched recursively, or @list.txt)
    into the feature cache folder `cache`; returns the ExtractReport.

    `config` holds ExtractConfig's fields (backbone, weights, crops, profile, device, precision,
    decoder, shard, overwrite...). `backend="ray"` spreads the videos over a Ray cluster
    (`ray`: a RayOptions). Finished videos are skipped, so an interrupted call resumes.
    """
    from vad.extract.inputs import discover
    from vad.extract.runner import ExtractConfig
    from vad.extract.runner import extract as run_local

    inputs = [str(videos)] if isinstance(videos, (str, Path)) else [str(v) for v in videos]
    items = discover(inputs)
    if not items:
        raise VadError(f"no video files found in {', '.join(inputs)}")
    settings = _configure(ExtractConfig, {k: Path(v) if k == "weights" and v is not None else v for k, v in config.items()}, "extract")
    settings.check()
    if backend == "ray":
        from vad.extract.ray_backend import RayOptions, extract_ray, import_ray

        import_ray()
        return extract_ray(items, cache, settings, ray or RayOptions(), progress=progress)
    if backend != "local":
        raise ConfigError(f"unknown backend {backend!r}; choose local or ray")
    if ray is not None:
        raise ConfigError("Ray options need backend='ray'")
    return run_local(items, cache, settings, progress=progress)


# -- training -------------------------------------------------------------------------------------
@dataclass
class Run:
    """A training run's folder: OUT/model.pt, OUT/iter_<k>.pt, OUT/metrics.json, OUT/train.log."""

    out: Path
    config: Any  # the TrainConfig it ran with
    metrics: list[dict]  # one entry per finished iteration, as in metrics.json
    health: dict  # models/health.py: flat iterations, lambda runaway, live units, label agreement, warnings

    @property
    def model(self) -> Path:
        return self.out / "model.pt"

    @property
    def final(self) -> dict:
        return self.metrics[-1]

    def scorer(self, **config):
        """A Scorer of raw videos with this run's final model (see load_scorer)."""
        return load_scorer(self.model, **config)


def resolve_train_device(device: str) -> str:
    """The device name training and evaluation use, checked as extraction checks it."""
    from vad.extract.engine import resolve_device

    return str(resolve_device(device))


def train(cache: PathLike, labels: PathLike, *, out: PathLike | None = None, preset: str | None = None,
          eval_cache: PathLike | None = None, eval_labels: PathLike | None = None, gt: PathLike | None = None,
          train_gt: PathLike | None = None, resume: bool = False, generated_footage: bool = False,
          device: str = "auto", progress: bool = True, command: str | None = None, **config) -> Run:
    """Train the ARMS detector (or a baseline) on the cached features of the videos in `labels`
    (CSV `video,label`); returns the Run.

    `config` holds TrainConfig's fields (schedule, phases, iterations, loss, epochs, min_steps,
    crop_bags, lr, lambda_small, lambda_large, seed...) over `preset` ("sh", "ucf", "xd": the
    paper's hyper-parameters), and `detector`: a DetectorConfig or a dict of its fields.
    With `eval_labels` and `gt` every iteration is evaluated on `eval_cache` (default: `cache`).
    `resume=True` continues the run in `out` after its last finished iteration.
    `command` is recorded in the model's provenance (default: the command line, see invocation).
    """
    from vad.extract.cache import FeatureCache
    from vad.models.trainer import make_config
    from vad.pipeline.tables import read_gt, read_labels

    features = FeatureCache(cache)
    cache_config = features.config
    video_labels = read_labels(labels, features.video_ids())
    settings = make_config(preset, **config, device=resolve_train_device(device))
    evaluation = _eval_setup(eval_labels, gt, FeatureCache(eval_cache) if eval_cache else features)
    training_gt = read_gt(train_gt, video_labels) if train_gt else None

    out = Path(out) if out else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    history: list[dict] = []
    resume_state = None
    if resume:
        resume_state, history = _resume(out, settings)
    elif (out / "metrics.json").exists() or (out / "model.pt").exists():
        raise VadError(f"--out {out}: holds an earlier run; use --resume or another folder")
    out.mkdir(parents=True, exist_ok=True)
    origin_command = command if command is not None else invocation()
    with _log_file(out / "train.log"):
        summary = _run(settings, features, cache_config, video_labels, evaluation, training_gt, out, history, resume_state,
                       generated_footage, origin_command, progress)
    return Run(out, settings, history, summary)


def invocation() -> str:
    """The command line as typed: the `vad` command running this (click's context), else argv."""
    import click

    from vad.pipeline.cli import COMMAND_LINE

    context = click.get_current_context(silent=True)
    return shlex.join(context.meta[COMMAND_LINE] if context is not None and COMMAND_LINE in context.meta else sys.argv)


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


def _eval_setup(eval_labels, gt_path, eval_cache):
    from vad.pipeline.evaluate import cache_frame_counts
    from vad.pipeline.tables import read_gt, read_labels

    if (eval_labels is None) != (gt_path is None):
        raise ConfigError("--eval-labels and --gt go together")
    if eval_labels is None:
        return None
    labels = read_labels(eval_labels, eval_cache.video_ids())
    counts = cache_frame_counts(eval_cache, list(labels))
    gt = read_gt(gt_path, eval_cache.video_ids(), counts)
    return eval_cache, list(labels), counts, gt


def _resume(out: Path, config):
    import numpy as np

    from vad.models.io import load_model
    from vad.models.trainer import ResumeState, TrainConfig

    metrics_path = out / "metrics.json"
    if not metrics_path.is_file():
        raise VadError(f"--resume: {metrics_path} not found; nothing to resume")
    previous = json.loads(metrics_path.read_text())
    mine = {k: v for k, v in config.to_dict().items() if k != "device"}
    # Read as a TrainConfig: a run written before the config held the whole detector lacks keys that were the defaults.
    theirs = {k: v for k, v in TrainConfig.from_dict(previous.get("config", {})).to_dict().items() if k != "device"}
    if mine != theirs:
        changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise VadError(f"--resume: settings differ from the run in {out}: {', '.join(changed)}")
    history = previous.get("iterations", [])
    if not history:
        return None, []
    last = history[-1]["iteration"]
    if last >= len(config.plan()):
        raise VadError(f"--resume: all {last} iterations of the run in {out} are finished")
    model, payload = load_model(out / f"iter_{last}.pt", config.device)
    ratios = payload.get("ratios", {})
    return ResumeState(last, model, np.array(list(ratios.values()), dtype=np.float64)), history


def provenance(cache, cache_config: dict, data, generated_footage: bool, command: str) -> dict:
    """What a model file says about where it came from (shown by `vad score --format json`)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        vad_version = version("vad")
    except PackageNotFoundError:
        vad_version = None
    return {
        "backbone": cache_config.get("backbone"),
        "train_videos": {"normal": len(data.normal_ids), "abnormal": len(data.abnormal_ids),
                         "total": len(data.normal_ids) + len(data.abnormal_ids)},
        "cache": str(Path(cache.root).resolve()),
        "command": command,
        "generated_footage": generated_footage,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "vad_version": vad_version,
    }


def _run(config, cache, cache_config, labels, evaluation, training_gt, out, history, resume_state, generated_footage, command, progress):
    import torch

    from vad.files import atomic_write_json
    from vad.hardware import arithmetic
    from vad.models.health import describe, health
    from vad.models.io import save_model
    from vad.models.trainer import load_training_set, training_precision
    from vad.models.trainer import train as run_training
    from vad.pipeline.common import fmt_optional

    data = load_training_set(cache, labels, config.segments, progress=progress)
    feature = {k: v for k, v in cache_config.items() if k != "format"}
    device = torch.device(config.device)
    computed = arithmetic(device, features=",".join(data.feature_precisions), training=training_precision(config))
    origin = {**provenance(cache, cache_config, data, generated_footage, command), "arithmetic": computed}
    log.info("training on %d normal + %d abnormal videos, %d crops, D=%d; plan %s; device %s",
             len(data.normal_ids), len(data.abnormal_ids), data.crops, data.feature_dim, ",".join(config.plan()), config.device)
    if resume_state is not None and len(resume_state.ratios) != len(data.abnormal_ids):
        raise VadError(f"--resume: the checkpoint holds {len(resume_state.ratios)} abnormal ratios, the labels {len(data.abnormal_ids)} abnormal videos")

    def on_iteration(result):
        metrics = dict(result.metrics)
        if evaluation is not None:
            metrics["eval"] = _evaluate_iteration(result.model, evaluation, progress)
        info = {"feature": feature, "provenance": origin, "train": config.to_dict(), "iteration": result.iteration, "phase": result.phase,
                "ratios": {v: float(r) for v, r in zip(data.abnormal_ids, result.ratios)}}
        save_model(out / f"iter_{result.iteration}.pt", result.model, **info)
        history.append(metrics)
        atomic_write_json(out / "metrics.json", {"config": config.to_dict(), "feature": feature, "arithmetic": computed, "iterations": history})
        summary = f"iteration {result.iteration} ({result.phase}): loss {metrics['loss']:.4f}, lambda mean {metrics['lambda']['mean']:.3f} " \
                  f"(guard fired {metrics['lambda']['guard_fired']}), abnormal within-video std {metrics['train_monitors']['abnormal_within_video_std']:.3f} " \
                  f"(train mode {metrics['train_mode']['abnormal_within_video_std']:.3f}), saturated logits {metrics['pre_sigmoid']['saturated_share']:.0%}"
        if evaluation is not None and metrics["eval"]["auc"] is not None:
            e = metrics["eval"]
            summary += f", AUC {e['auc']:.4f}, AP {e['ap']:.4f}, AUC_A {fmt_optional(e['auc_abnormal'])}, spread {fmt_optional(e['spread_abnormal'])}"
        log.info("%s", summary)

    try:
        final = run_training(config, data, on_iteration=on_iteration, resume=resume_state, progress=progress, train_gt=training_gt)
    except VadError as exc:  # a cache entry or checkpoint that breaks mid-run: the finished iterations are kept
        raise RunFailure(str(exc)) from None
    summary = health(history)
    log.info("%s", describe(summary))
    for warning in summary["warnings"]:
        log.warning("warning: %s", warning)
    atomic_write_json(out / "metrics.json", {"config": config.to_dict(), "feature": feature, "arithmetic": computed, "iterations": history,
                                             "health": summary})
    save_model(out / "model.pt", final.model, feature=feature, provenance={**origin, "health": summary}, train=config.to_dict(),
               iteration=final.iteration, phase=final.phase, ratios={v: float(r) for v, r in zip(data.abnormal_ids, final.ratios)})
    return summary


def _evaluate_iteration(model, evaluation, progress: bool) -> dict:
    from vad.pipeline.evaluate import evaluate_scores, score_cache

    eval_cache, order, counts, gt = evaluation
    raw = score_cache(model, eval_cache, order, progress=progress)
    corrected = evaluate_scores(raw, counts, gt, order, correction=True)
    uncorrected = evaluate_scores(raw, counts, gt, order, correction=False)
    keys = ("auc", "ap", "ap_trapezoid", "score_gap", "auc_abnormal", "ap_abnormal", "spread_abnormal", "false_alarm_rate", "monitors")
    return {**corrected, "uncorrected": {k: uncorrected[k] for k in keys}}


# -- evaluation -----------------------------------------------------------------------------------
def evaluate(model: PathLike, cache: PathLike, labels: PathLike, gt: PathLike, *, correction: bool = True, device: str = "auto",
             scores_out: PathLike | None = None, progress: bool = True) -> dict:
    """Frame-level metrics of a trained model on cached test videos, in the field's conventions
    (vad.pipeline.evaluate): auc, ap, ap_trapezoid, score_gap, auc_abnormal, ap_abnormal,
    spread_abnormal, false_alarm_rate and details. `scores_out`: also write DIR/<video_id>.csv."""
    from vad.extract.cache import FeatureCache
    from vad.models.io import load_model
    from vad.pipeline.evaluate import cache_frame_counts, evaluate_scores, final_scores, score_cache, write_frame_scores
    from vad.pipeline.tables import read_gt, read_labels

    features = FeatureCache(cache)
    dim = features.feature_dim
    video_labels = read_labels(labels, features.video_ids())
    counts = cache_frame_counts(features, list(video_labels))
    truth = read_gt(gt, features.video_ids(), counts)
    detector, payload = load_model(model, resolve_train_device(device))
    if detector.config.feature_dim != dim:
        raise VadError(f"--model {model} expects {detector.config.feature_dim}-d features, the cache {cache} holds {dim}-d")
    trained_on, holds = payload.get("feature", {}).get("backbone"), features.config.get("backbone")
    if trained_on and holds and trained_on != holds:
        raise VadError(f"--model {model} was trained on {trained_on} features, the cache {cache} holds {holds} features")
    order = list(video_labels)
    raw = score_cache(detector, features, order, progress=progress)
    result = evaluate_scores(raw, counts, truth, order, correction=correction)
    if result["auc"] is None:
        raise VadError(f"{gt}: the test videos need both abnormal and normal frames to compute AUC")
    if scores_out is not None:
        try:
            write_frame_scores(Path(scores_out), final_scores(raw, correction), counts)
        except OSError as exc:
            raise RunFailure(f"--scores-out {scores_out}: {exc.strerror or exc}") from None
    return result


# -- scoring --------------------------------------------------------------------------------------
def load_scorer(model: PathLike | None = None, **config):
    """A Scorer of raw videos: `Scorer.score(video) -> Curve` (one score per decoded frame).

    `model`: a model.pt written by `vad train`; None: the default model, as `vad score` uses.
    `config` holds ScoreConfig's fields (device, correction, weights, decoder, batch_size...).
    The backbone, crops and preprocessing come from the model file.
    """
    from vad.pipeline.score import ScoreConfig, default_model_path
    from vad.pipeline.score import load_scorer as load

    path = Path(model) if model is not None else default_model_path()
    return load(_configure(ScoreConfig, {**config, "model": path}, "load_scorer"))


# -- live scoring ---------------------------------------------------------------------------------
def watch(source: str, model: PathLike | None = None, **config) -> dict:
    """Score a live source (rtsp/http/udp URL, /dev/videoN camera, or a file) causally, one JSON
    line per snippet and per event; returns a summary. `config` holds WatchConfig's fields
    (vad.pipeline.watch: window, threshold, min_snippets, cooldown, reconnect, timeout...)."""
    from vad.pipeline.watch import watch as run

    return run(source, model, **config)
