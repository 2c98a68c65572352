"""The Python API: what the `vad` commands do, as functions; the commands are thin layers over it.

    import vad

    report = vad.extract_features("videos/", "cache/", backbone="i3d-inception", crops=1)
    run = vad.train("cache/", "labels.csv", out="run/", iterations=4)
    scorer = vad.load_scorer(run.model)
    curve = scorer.score("clip.mp4")
    curve.frame_scores, curve.fps, curve.intervals(0.5), curve.provenance

Errors are `vad.errors.VadError` subclasses whose message says what is wrong and where; a
setting of the wrong type, range or choice is a ConfigError naming it and what it accepts.
Settings are the fields of the typed configs, where each is declared once (vad.settings):
`ExtractConfig` (vad.extract.runner), `TrainConfig` and `DetectorConfig` (vad.models.config,
vad.models.detector), `ScoreConfig` (vad.pipeline.score), `WatchConfig` (vad.pipeline.watch).
"""
from __future__ import annotations

import shlex
import sys
from collections.abc import Iterable
from pathlib import Path

from vad.errors import ConfigError, RunFailure, VadError
from vad.settings import build

PathLike = str | Path


def _check_paths(**paths: tuple[PathLike | None, str]) -> None:
    """ConfigError for an argument that is not a path, or a file given where a folder is expected
    (or the reverse); `paths`: name -> (value, "file" or "dir"). Missing paths are the reader's to report."""
    for name, (value, kind) in paths.items():
        if value is None:
            continue
        if not isinstance(value, str | Path):
            raise ConfigError(f"{name} takes a path, got {value!r} ({type(value).__name__})")
        path = Path(value).expanduser()
        if kind == "dir" and path.exists() and not path.is_dir():
            raise ConfigError(f"{name} {value}: a file; a folder is expected")
        if kind == "file" and path.is_dir():
            raise ConfigError(f"{name} {value}: a folder; a file is expected")


# -- extraction -----------------------------------------------------------------------------------
def extract_features(videos: PathLike | Iterable[PathLike], cache: PathLike, *, backend: str = "local", ray=None, progress: bool = True,
                     **config):
    """Extract backbone features of `videos` (files, folders searched recursively, or @list.txt)
    into the feature cache folder `cache`; returns the ExtractReport.

    `config` holds ExtractConfig's fields (backbone, weights, crops, profile, device, precision,
    decoder, shard, overwrite...). `backend="ray"` spreads the videos over a Ray cluster
    (`ray`: a RayOptions). Finished videos are skipped, so an interrupted call resumes.
    """
    from vad.extract.inputs import discover
    from vad.extract.runner import ExtractConfig, run_extraction

    _check_paths(cache=(cache, "dir"))
    given = [videos] if isinstance(videos, str | Path) else list(videos) if isinstance(videos, Iterable) else None
    if given is None or not all(isinstance(v, str | Path) for v in given):
        raise ConfigError(f"videos takes a path or a list of paths, got {videos!r}")
    inputs = [str(v) for v in given]
    settings = build(ExtractConfig, {k: Path(v) if k == "weights" and isinstance(v, str) else v for k, v in config.items()}, "extract")
    settings.check()
    items = discover(inputs)
    if not items:
        raise VadError(f"no video files found in {', '.join(inputs)}")
    if backend == "ray":
        from vad.extract.ray_backend import RayOptions, extract_ray, import_ray

        import_ray()
        return extract_ray(items, cache, settings, ray or RayOptions(), progress=progress)
    if backend != "local":
        raise ConfigError(f"unknown backend {backend!r}; choose local or ray")
    if ray is not None:
        raise ConfigError("Ray options need backend='ray'")
    return run_extraction(items, cache, settings, progress=progress)


# -- training -------------------------------------------------------------------------------------
def train(cache: PathLike, labels: PathLike, *, out: PathLike | None = None, preset: str | None = None,
          eval_cache: PathLike | None = None, eval_labels: PathLike | None = None, gt: PathLike | None = None,
          train_gt: PathLike | None = None, resume: bool = False, generated_footage: bool = False,
          progress: bool = True, command: str | None = None, **config):
    """Train the ARMS detector (or a baseline) on the cached features of the videos in `labels`
    (CSV `video,label`); returns the Run (vad.models.run).

    `config` holds TrainConfig's fields (schedule, phases, iterations, loss, epochs, min_steps,
    crop_bags, lr, lambda_small, lambda_large, seed, device...) over `preset` ("sh", "ucf", "xd": the
    paper's hyper-parameters), and `detector`: a DetectorConfig or a dict of its fields.
    With `eval_labels` and `gt` every iteration is evaluated on `eval_cache` (default: `cache`).
    `resume=True` continues the run in `out` after its last finished iteration.
    `command` is recorded in the model's provenance (default: the command line, see invocation).
    A thin layer over vad.models.Trainer.
    """
    from vad.models.config import make_config
    from vad.models.run import Trainer

    _check_paths(cache=(cache, "dir"), labels=(labels, "file"), eval_cache=(eval_cache, "dir"), eval_labels=(eval_labels, "file"),
                 gt=(gt, "file"), train_gt=(train_gt, "file"), out=(out, "dir"))
    trainer = Trainer(make_config(preset, **config), out=out, progress=progress,
                      command=command if command is not None else invocation(), generated_footage=generated_footage)
    return trainer.fit(cache, labels, eval_cache=eval_cache, eval_labels=eval_labels, gt=gt, train_gt=train_gt, resume=resume)


def invocation() -> str:
    """The command line as typed: the `vad` command running this (click's context), else argv."""
    import click

    from vad.pipeline.cli import COMMAND_LINE

    context = click.get_current_context(silent=True)
    return shlex.join(context.meta[COMMAND_LINE] if context is not None and COMMAND_LINE in context.meta else sys.argv)


# -- evaluation -----------------------------------------------------------------------------------
def evaluate(model: PathLike, cache: PathLike, labels: PathLike, gt: PathLike, *, correction: bool = True, device: str = "auto",
             scores_out: PathLike | None = None, progress: bool = True) -> dict:
    """Frame-level metrics of a trained model on cached test videos, in the field's conventions
    (vad.models.evaluate): auc, ap, ap_trapezoid, score_gap, auc_abnormal, ap_abnormal,
    spread_abnormal, false_alarm_rate and details. `scores_out`: also write DIR/<video_id>.csv."""
    from vad.extract.cache import FeatureCache
    from vad.models.evaluate import cache_layouts, evaluate_scores, final_scores, frame_score_paths, score_cache, write_frame_scores
    from vad.models.io import load_model
    from vad.models.run import resolve_device
    from vad.tables import read_gt, read_labels

    _check_paths(model=(model, "file"), cache=(cache, "dir"), labels=(labels, "file"), gt=(gt, "file"), scores_out=(scores_out, "dir"))
    if not isinstance(correction, bool):
        raise ConfigError(f"correction takes True or False, got {correction!r}")

    features = FeatureCache(cache)
    dim = features.feature_dim
    video_labels = read_labels(labels, features.video_ids())
    if scores_out is not None:  # every id's file checked before the work (VadError, nothing written)
        frame_score_paths(Path(scores_out), list(video_labels))
    layouts = cache_layouts(features, list(video_labels))  # which frames each feature row covers
    truth = read_gt(gt, features.video_ids(), {video: layout.n_frames for video, layout in layouts.items()})
    detector, payload = load_model(model, resolve_device(device))
    if detector.config.feature_dim != dim:
        raise VadError(f"--model {model} expects {detector.config.feature_dim}-d features, the cache {cache} holds {dim}-d")
    trained_on, holds = payload.get("feature", {}).get("backbone"), features.config.get("backbone")
    if trained_on and holds and trained_on != holds:
        raise VadError(f"--model {model} was trained on {trained_on} features, the cache {cache} holds {holds} features")
    order = list(video_labels)
    raw = score_cache(detector, features, order, progress=progress, model_name=str(model))
    result = evaluate_scores(raw, layouts, truth, order, correction=correction)
    if result["auc"] is None:
        raise VadError(f"{gt}: the test videos need both abnormal and normal frames to compute AUC")
    if scores_out is not None:
        try:
            write_frame_scores(Path(scores_out), final_scores(raw, correction), layouts)
        except OSError as exc:
            raise RunFailure(f"--scores-out {scores_out}: {exc.strerror or exc}") from None
    return result


# -- scoring --------------------------------------------------------------------------------------
def load_scorer(model: PathLike | None = None, **config):
    """A Scorer of raw videos: `Scorer.score(video) -> Curve` (one score per decoded frame).

    `model`: a model.pt written by `vad train`, or an export folder of `vad export`; None: the default
    model, as `vad score` uses. `config` holds ScoreConfig's fields (device, correction, weights,
    decoder, batch_size, runtime...).
    The backbone, crops and preprocessing come from the model file.
    """
    from vad.pipeline.score import ScoreConfig, Scorer

    return Scorer.from_config(build(ScoreConfig, {**config, **({"model": model} if model is not None else {})}, "load_scorer"))


def export(model: PathLike, out: PathLike, **config):
    """Export a model.pt to ONNX or OpenVINO files that run without vad, as `vad export`; returns the
    Exported folder (its `manifest` is vad-export.json). `config` holds ExportConfig's fields (format,
    int8, calibrate, snippets, held_out, weights, exact, overwrite...)."""
    from vad.pipeline.export import ExportConfig, export_model

    if "calibrate" in config:
        config["calibrate"] = tuple(Path(p) for p in ([config["calibrate"]] if isinstance(config["calibrate"], str | Path) else config["calibrate"]))
    return export_model(Path(model), Path(out), build(ExportConfig, config, "export"), progress=False)


# -- live scoring ---------------------------------------------------------------------------------
def watch(source: str, model: PathLike | None = None, **config) -> dict:
    """Score a live source (rtsp/http/udp URL, /dev/videoN camera, or a file) causally, one JSON
    line per snippet and per event; returns a summary. `config` holds WatchConfig's fields
    (vad.pipeline.watch: window, threshold, min_snippets, cooldown, reconnect, timeout...)."""
    from vad.pipeline.watch import watch as run

    return run(source, model, **config)
