"""`vad train`: ARMS multi-phase self-training (or a baseline) on a feature cache."""
from __future__ import annotations

import json

import click

from vad import settings
from vad.errors import RunFailure
from vad.models.config import PRESETS, TrainConfig
from vad.pipeline.common import progress_disabled, verbosity


@click.command()
@click.option("--cache", "cache_dir", required=True, type=click.Path(file_okay=False),
              help="Feature cache of the training videos (from `vad extract` or `vad cache import`).")
@click.option("--labels", "labels_path", required=True, type=click.Path(dir_okay=False), help="Training labels: CSV `video,label` (0/1 or normal/abnormal).")
@click.option("--preset", type=click.Choice(list(PRESETS)), default=None,
              help="The paper's hyper-parameters (Sec. IV-B): " + "; ".join(f"{name} {', '.join(f'{k} {v:g}' for k, v in values.items())}"
                                                                          for name, values in PRESETS.items()) + ". Options override it.")
@settings.options(TrainConfig)
@click.option("--eval-labels", type=click.Path(dir_okay=False), default=None,
              help="Test labels CSV: evaluate after every iteration (needs --gt; features from --eval-cache).")
@click.option("--gt", "gt_path", type=click.Path(dir_okay=False), default=None, help="Test ground truth CSV `video,start_frame,end_frame` (end exclusive).")
@click.option("--eval-cache", type=click.Path(file_okay=False), default=None, help="Cache of the test videos. Default: --cache.")
@click.option("--train-gt", type=click.Path(dir_okay=False), default=None,
              help="Frame GT of training videos (e.g. ShanghaiTech): adds pseudo-label precision (Table VI) to metrics.json.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Output folder. Default: runs/<timestamp>.")
@click.option("--generated-footage", is_flag=True, hidden=True,
              help="Record that the training videos are generated (set by `vad demo`): `vad score` then warns.")
@click.option("--resume", is_flag=True, help="Continue the run in --out after its last finished iteration (same settings required).")
@click.option("--strict", is_flag=True,
              help="Exit 1 when the run's health check warns (a final detector that is flat inside abnormal videos, a flat "
                   "iteration whose pseudo labels trained the next, pseudo labels that turned around, AUC_A < 0.5 on the "
                   "evaluation videos, runaway ratios, a mostly dead head); everything is still written.")
@verbosity
def train(*, cache_dir, labels_path, preset, eval_labels, gt_path, eval_cache, train_gt, out_dir, generated_footage, resume, strict, **options):
    """Train the ARMS detector on cached features with video-level labels only.

    Writes OUT/model.pt (final model), OUT/iter_<k>.pt (one per iteration), OUT/metrics.json
    (per iteration: loss, lambda statistics, pseudo-label counts, flatness monitors and, with
    --eval-labels/--gt, AUC/AP/score gap) and OUT/train.log. Prints a JSON summary on stdout.

    At the end a health check reads every iteration's monitors and prints one line (flat
    iterations, lambda runaway, live units, pseudo-label agreement between iterations), then a
    warning for each problem, naming the iteration and what to try; metrics.json and the model's
    provenance record it, and --strict turns a warning into exit 1.
    """
    from vad.pipeline.api import train as run_training

    run = run_training(cache_dir, labels_path, out=out_dir, preset=preset, eval_cache=eval_cache, eval_labels=eval_labels, gt=gt_path,
                       train_gt=train_gt, resume=resume, generated_footage=generated_footage, progress=not progress_disabled(),
                       **settings.given(TrainConfig, options))
    last = run.final
    click.echo(json.dumps({"out": str(run.out), "model": str(run.model), "iterations": len(run.metrics),
                           "final": {"iteration": last["iteration"], "phase": last["phase"], "loss": last["loss"],
                                     **({k: last["eval"][k] for k in ("auc", "ap", "ap_trapezoid", "score_gap")} if "eval" in last else {})},
                           "health": {"ok": run.health["ok"], "warnings": len(run.health["warnings"])}}))
    if strict and not run.health["ok"]:
        raise RunFailure(f"--strict: the health check warned {len(run.health['warnings'])} time(s), first: {run.health['warnings'][0]} "
                         f"(all in {run.out / 'metrics.json'}, \"health\")")
