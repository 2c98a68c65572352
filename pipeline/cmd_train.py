"""`vad train`: ARMS multi-phase self-training (or a baseline) on a feature cache."""
from __future__ import annotations

import contextlib
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import click

from vad.pipeline.common import BadInput, RuntimeFailure, fmt_optional, progress_disabled, verbosity

log = logging.getLogger("vad")


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadInput(f"--device {device}: CUDA is not available on this machine")
    try:
        torch.device(device)
    except RuntimeError:
        raise BadInput(f"--device {device!r}: expected auto, cpu, cuda or cuda:N") from None
    return device


@click.command()
@click.option("--cache", "cache_dir", required=True, type=click.Path(file_okay=False), help="Feature cache of the training videos (from `vad extract` or `vad cache import`).")
@click.option("--labels", "labels_path", required=True, type=click.Path(dir_okay=False), help="Training labels: CSV `video,label` (0/1 or normal/abnormal).")
@click.option("--schedule", type=click.Choice(["arms", "traditional"]), default="arms", show_default=True, help="arms: multi-phase self-training (Algorithm 1); traditional: the baseline, one loss, pseudo labels from the previous iteration.")
@click.option("--phases", default="bst,ham,as", show_default=True, help="ARMS phases in order (any ordered subset of bst,ham,as); the last one repeats up to --iterations.")
@click.option("--iterations", type=click.IntRange(min=1), default=None, help="Self-training iterations K. Default: 6 when the last phase self-trains (ham, as, or --schedule traditional), else one per phase.")
@click.option("--loss", type=click.Choice(["ar", "ms-top1", "ms-topk"]), default="ar", show_default=True, help="Video-level loss of --schedule traditional: AR-MIL (eq. 4), MS-MIL top-1 (eq. 1) or top-k (eq. 2).")
@click.option("--preset", type=click.Choice(["sh", "ucf", "xd"]), default=None, help="The paper's hyper-parameters (Sec. IV-B): sh lr 1e-3, 300 epochs, lambda 0.1/0.42; ucf 1e-4, 50, 0.22/0.4; xd 1e-4, 50, 0.1/0.4. Flags override it.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs per iteration (an epoch: every video of the larger class once). Default: preset, else 50.")
@click.option("--min-steps", type=click.IntRange(min=0), default=None, help="Floor on optimiser steps per iteration: an iteration runs max(epochs x steps per epoch, this). Small sets get a few steps per epoch and would be undertrained. Default: 100.")
@click.option("--crop-bags", type=click.Choice(["mean", "each"]), default=None, help="mean: a video's snippet scores are averaged over its crops before the loss (RTFM); each: every crop is a bag of its own. Default: mean.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Adam learning rate. Default: preset, else 1e-4.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=None, help="Adam weight decay. Default: 5e-4.")
@click.option("--batch-videos", type=click.IntRange(min=1), default=None, help="Videos per class per mini-batch (30 normal + 30 abnormal). Default: 30.")
@click.option("--lambda-small", type=float, default=None, help="Bootstrapping abnormal ratio. Default: preset, else 0.1.")
@click.option("--lambda-large", type=float, default=None, help="Hard-anomaly-mining abnormal ratio. Default: preset, else 0.4.")
@click.option("--lambda-fixed", type=float, default=None, help="Abnormal ratio of --schedule traditional --loss ar. Default: --lambda-small.")
@click.option("--lambda-max", type=float, default=None, help="Cap on adaptive-self-training ratios (eq. 6). Default: 1.0 (no cap, as the paper).")
@click.option("--beta", type=click.FloatRange(min=0), default=None, help="Weight of the pseudo-label BCE (eq. 5). Default: 0.5.")
@click.option("--topk", type=click.IntRange(min=1), default=None, help="k of MS-MIL top-k. Default: 3.")
@click.option("--dropout", type=click.FloatRange(min=0, max=1, max_open=True), default=None, help="Detector dropout. Default: 0.7.")
@click.option("--hidden-dim", type=click.IntRange(min=8), default=None, help="Detector width (Fig. 5: 1024). Default: 1024; smaller trains much faster on CPU.")
@click.option("--no-attention", "no_attention", is_flag=True, help="Drop the self-attention block (conv + MLP): scores cannot be lifted video-wide (bench/RESULTS.md: better AUC_A, worse frame AUC on the synthetic worlds).")
@click.option("--init", type=click.Choice(["xavier", "torch"]), default=None, help="Detector weights at the start of each iteration: xavier (RTFM's) or torch (PyTorch's default, smaller); the attention gate starts closed either way. Default: xavier.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds initialisation, dropout and sampling: a CPU run repeats exactly.")
@click.option("--eval-labels", type=click.Path(dir_okay=False), default=None, help="Test labels CSV: evaluate after every iteration (needs --gt; features from --eval-cache).")
@click.option("--gt", "gt_path", type=click.Path(dir_okay=False), default=None, help="Test ground truth CSV `video,start_frame,end_frame` (end exclusive).")
@click.option("--eval-cache", type=click.Path(file_okay=False), default=None, help="Cache of the test videos. Default: --cache.")
@click.option("--train-gt", type=click.Path(dir_okay=False), default=None, help="Frame GT of training videos (e.g. ShanghaiTech): adds pseudo-label precision (Table VI) to metrics.json.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Output folder. Default: runs/<timestamp>.")
@click.option("--generated-footage", is_flag=True, hidden=True, help="Record that the training videos are generated (set by `vad demo`): `vad score` then warns.")
@click.option("--resume", is_flag=True, help="Continue the run in --out after its last finished iteration (same settings required).")
@verbosity
def train(cache_dir, labels_path, schedule, phases, iterations, loss, preset, epochs, min_steps, crop_bags, lr, weight_decay, batch_videos,
          lambda_small, lambda_large, lambda_fixed, lambda_max, beta, topk, dropout, hidden_dim, no_attention, init, seed, eval_labels, gt_path, eval_cache,
          train_gt, device, out_dir, generated_footage, resume):
    """Train the ARMS detector on cached features with video-level labels only.

    Writes OUT/model.pt (final model), OUT/iter_<k>.pt (one per iteration), OUT/metrics.json
    (per iteration: loss, lambda statistics, pseudo-label counts, flatness monitors and, with
    --eval-labels/--gt, AUC/AP/score gap) and OUT/train.log. Prints a JSON summary on stdout.
    """
    from vad.extract.cache import CacheError, FeatureCache
    from vad.models.io import ModelFileError, load_model
    from vad.models.trainer import load_training_set, make_config
    from vad.pipeline.tables import TableError, read_gt, read_labels

    cache = FeatureCache(cache_dir)
    try:
        cache_config = cache.config
        labels = read_labels(labels_path, cache.video_ids())
        config = make_config(
            preset, schedule=schedule, phases=tuple(p.strip() for p in phases.split(",") if p.strip()), iterations=iterations,
            loss=loss, epochs=epochs, min_steps=min_steps, crop_bags=crop_bags, lr=lr, weight_decay=weight_decay, batch_videos=batch_videos, lambda_small=lambda_small,
            lambda_large=lambda_large, lambda_fixed=lambda_fixed, lambda_max=lambda_max, beta=beta, topk=topk, dropout=dropout, hidden_dim=hidden_dim,
            attention=False if no_attention else None, init=init, seed=seed,
            device=resolve_device(device),
        )
        evaluation = _eval_setup(eval_labels, gt_path, FeatureCache(eval_cache) if eval_cache else cache)
        training_gt = read_gt(train_gt, labels) if train_gt else None
    except (CacheError, TableError, ValueError) as exc:
        raise BadInput(str(exc)) from None

    out = Path(out_dir) if out_dir else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    metrics_path = out / "metrics.json"
    history: list[dict] = []
    resume_state = None
    if resume:
        resume_state, history = _resume(out, config, load_model)
    elif metrics_path.exists() or (out / "model.pt").exists():
        raise BadInput(f"--out {out}: holds an earlier run; use --resume or another folder")
    out.mkdir(parents=True, exist_ok=True)
    with _log_file(out / "train.log"):
        try:
            return _run(config, cache, cache_config, labels, evaluation, training_gt, out, history, resume_state, load_training_set,
                        generated_footage)
        except (CacheError, ModelFileError) as exc:
            raise RuntimeFailure(str(exc)) from None


@contextlib.contextmanager
def _log_file(path: Path):
    """The run's log file gets INFO even under -q: the stderr handlers keep the level chosen by
    -v/-q, and the 'vad' logger lets INFO through to the file."""
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
        raise ValueError("--eval-labels and --gt go together")
    if eval_labels is None:
        return None
    labels = read_labels(eval_labels, eval_cache.video_ids())
    counts = cache_frame_counts(eval_cache, list(labels))
    gt = read_gt(gt_path, eval_cache.video_ids(), counts)
    return eval_cache, list(labels), counts, gt


def _resume(out: Path, config, load_model):
    from vad.models.trainer import ResumeState

    metrics_path = out / "metrics.json"
    if not metrics_path.is_file():
        raise BadInput(f"--resume: {metrics_path} not found; nothing to resume")
    previous = json.loads(metrics_path.read_text())
    mine = {k: v for k, v in config.to_dict().items() if k != "device"}
    theirs = {k: v for k, v in previous.get("config", {}).items() if k != "device"}
    if mine != theirs:
        changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        raise BadInput(f"--resume: settings differ from the run in {out}: {', '.join(changed)}")
    history = previous.get("iterations", [])
    if not history:
        return None, []
    last = history[-1]["iteration"]
    if last >= len(config.plan()):
        raise BadInput(f"--resume: all {last} iterations of the run in {out} are finished")
    model, payload = load_model(out / f"iter_{last}.pt", config.device)
    import numpy as np

    ratios = payload.get("ratios", {})
    return ResumeState(last, model, np.array(list(ratios.values()), dtype=np.float64)), history


def provenance(cache, cache_config: dict, data, generated_footage: bool) -> dict:
    """What a model file says about where it came from (shown by `vad score --format json`)."""
    from importlib.metadata import PackageNotFoundError, version

    from vad.pipeline.cli import COMMAND_LINE

    try:
        vad_version = version("vad")
    except PackageNotFoundError:
        vad_version = None
    return {
        "backbone": cache_config.get("backbone"),
        "train_videos": {"normal": len(data.normal_ids), "abnormal": len(data.abnormal_ids),
                         "total": len(data.normal_ids) + len(data.abnormal_ids)},
        "cache": str(Path(cache.root).resolve()),
        "command": shlex.join(click.get_current_context().meta.get(COMMAND_LINE, sys.argv)),
        "generated_footage": generated_footage,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "vad_version": vad_version,
    }


def _run(config, cache, cache_config, labels, evaluation, training_gt, out, history, resume_state, load_training_set, generated_footage):
    from vad.models.io import save_model
    from vad.models.trainer import train as run_training
    from vad.files import atomic_write_json

    progress = not progress_disabled()
    data = load_training_set(cache, labels, config.segments, progress=progress)
    feature = {k: v for k, v in cache_config.items() if k != "format"}
    origin = provenance(cache, cache_config, data, generated_footage)
    log.info("training on %d normal + %d abnormal videos, %d crops, D=%d; plan %s; device %s",
             len(data.normal_ids), len(data.abnormal_ids), data.crops, data.feature_dim, ",".join(config.plan()), config.device)
    if resume_state is not None:
        ids = data.abnormal_ids
        if len(resume_state.ratios) != len(ids):
            raise BadInput(f"--resume: the checkpoint holds {len(resume_state.ratios)} abnormal ratios, the labels {len(ids)} abnormal videos")

    def on_iteration(result):
        metrics = dict(result.metrics)
        if evaluation is not None:
            metrics["eval"] = _evaluate(result.model, evaluation, progress)
        info = {"feature": feature, "provenance": origin, "train": config.to_dict(), "iteration": result.iteration, "phase": result.phase,
                "ratios": {v: float(r) for v, r in zip(data.abnormal_ids, result.ratios)}}
        save_model(out / f"iter_{result.iteration}.pt", result.model, **info)
        history.append(metrics)
        atomic_write_json(out / "metrics.json", {"config": config.to_dict(), "feature": feature, "iterations": history})
        summary = f"iteration {result.iteration} ({result.phase}): loss {metrics['loss']:.4f}, lambda mean {metrics['lambda']['mean']:.3f} " \
                  f"(guard fired {metrics['lambda']['guard_fired']}), abnormal within-video std {metrics['train_monitors']['abnormal_within_video_std']:.3f}"
        if evaluation is not None and metrics["eval"]["auc"] is not None:
            e = metrics["eval"]
            summary += f", AUC {e['auc']:.4f}, AP {e['ap']:.4f}, AUC_A {fmt_optional(e['auc_abnormal'])}, spread {fmt_optional(e['spread_abnormal'])}"
        log.info("%s", summary)

    final = run_training(config, data, on_iteration=on_iteration, resume=resume_state, progress=progress, train_gt=training_gt)
    save_model(out / "model.pt", final.model, feature=feature, provenance=origin, train=config.to_dict(), iteration=final.iteration, phase=final.phase,
               ratios={v: float(r) for v, r in zip(data.abnormal_ids, final.ratios)})
    last = history[-1]
    click.echo(json.dumps({"out": str(out), "model": str(out / "model.pt"), "iterations": len(history),
                           "final": {"iteration": last["iteration"], "phase": last["phase"], "loss": last["loss"],
                                     **({k: last["eval"][k] for k in ("auc", "ap", "ap_trapezoid", "score_gap")} if "eval" in last else {})}}))


def _evaluate(model, evaluation, progress: bool) -> dict:
    from vad.pipeline.evaluate import evaluate_scores, score_cache

    eval_cache, order, counts, gt = evaluation
    raw = score_cache(model, eval_cache, order, progress=progress)
    corrected = evaluate_scores(raw, counts, gt, order, correction=True)
    uncorrected = evaluate_scores(raw, counts, gt, order, correction=False)
    keys = ("auc", "ap", "ap_trapezoid", "score_gap", "auc_abnormal", "ap_abnormal", "spread_abnormal", "false_alarm_rate", "monitors")
    return {**corrected, "uncorrected": {k: uncorrected[k] for k in keys}}
