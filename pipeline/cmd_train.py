"""`vad train`: ARMS multi-phase self-training (or a baseline) on a feature cache."""
from __future__ import annotations

import json

import click

from vad.errors import RunFailure
from vad.pipeline.common import progress_disabled, verbosity


@click.command()
@click.option("--cache", "cache_dir", required=True, type=click.Path(file_okay=False),
              help="Feature cache of the training videos (from `vad extract` or `vad cache import`).")
@click.option("--labels", "labels_path", required=True, type=click.Path(dir_okay=False), help="Training labels: CSV `video,label` (0/1 or normal/abnormal).")
@click.option("--schedule", type=click.Choice(["arms", "traditional"]), default="arms", show_default=True,
              help="arms: multi-phase self-training (Algorithm 1); traditional: the baseline, one loss, pseudo labels from the previous iteration.")
@click.option("--phases", default="bst,ham,as", show_default=True,
              help="ARMS phases in order (any ordered subset of bst,ham,as); the last one repeats up to --iterations.")
@click.option("--iterations", type=click.IntRange(min=1), default=None,
              help="Self-training iterations K. Default: 6 when the last phase self-trains (ham, as, or --schedule traditional), else one per phase.")
@click.option("--loss", type=click.Choice(["ar", "ms-top1", "ms-topk"]), default="ar", show_default=True,
              help="Video-level loss of --schedule traditional: AR-MIL (eq. 4), MS-MIL top-1 (eq. 1) or top-k (eq. 2).")
@click.option("--preset", type=click.Choice(["sh", "ucf", "xd"]), default=None,
              help="The paper's hyper-parameters (Sec. IV-B): sh lr 1e-3, 300 epochs, lambda "
                   "0.1/0.42; ucf 1e-4, 50, 0.22/0.4; xd 1e-4, 50, 0.1/0.4. Flags override it.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Epochs per iteration (an epoch: every video of the larger class once). Default: preset, else 50.")
@click.option("--min-steps", type=click.IntRange(min=0), default=None,
              help="Floor on optimiser steps per iteration: an iteration runs max(epochs x steps per epoch, "
                   "this). Small sets get a few steps per epoch and would be undertrained. Default: 100.")
@click.option("--crop-bags", type=click.Choice(["mean", "each"]), default=None,
              help="mean: a video's snippet scores are averaged over its crops before the loss (RTFM); each: every crop is a bag of its own. Default: mean.")
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
@click.option("--no-attention", "no_attention", is_flag=True,
              help="Drop the self-attention block (conv + MLP): scores cannot be lifted video-wide "
                   "(bench/RESULTS.md: better AUC_A, worse frame AUC on the synthetic worlds).")
@click.option("--init", type=click.Choice(["xavier", "torch"]), default=None,
              help="Detector weights at the start of each iteration: xavier (RTFM's) or torch (PyTorch's "
                   "default, smaller); the attention gate starts closed either way. Default: xavier.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds initialisation, dropout and sampling: a CPU run repeats exactly.")
@click.option("--eval-labels", type=click.Path(dir_okay=False), default=None,
              help="Test labels CSV: evaluate after every iteration (needs --gt; features from --eval-cache).")
@click.option("--gt", "gt_path", type=click.Path(dir_okay=False), default=None, help="Test ground truth CSV `video,start_frame,end_frame` (end exclusive).")
@click.option("--eval-cache", type=click.Path(file_okay=False), default=None, help="Cache of the test videos. Default: --cache.")
@click.option("--train-gt", type=click.Path(dir_okay=False), default=None,
              help="Frame GT of training videos (e.g. ShanghaiTech): adds pseudo-label precision (Table VI) to metrics.json.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="Arithmetic of the training steps (scoring and evaluation stay fp32). auto: fp32 on every device, so one "
                   "seed trains the same model on every CPU. bf16: autocast to bfloat16, native on CUDA GPUs and CPUs with AMX "
                   "(the demo trained 1.8x faster on an AMX Xeon), emulated and slower elsewhere; on 5 paired seeds of two demos it "
                   "moved the held-out AUC by -0.063 to +0.023 against fp32. metrics.json records what each iteration used.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Output folder. Default: runs/<timestamp>.")
@click.option("--generated-footage", is_flag=True, hidden=True,
              help="Record that the training videos are generated (set by `vad demo`): `vad score` then warns.")
@click.option("--resume", is_flag=True, help="Continue the run in --out after its last finished iteration (same settings required).")
@click.option("--strict", is_flag=True,
              help="Exit 1 when the run's health check warns (a final detector that is flat inside abnormal videos, a flat "
                   "iteration whose pseudo labels trained the next, pseudo labels that turned around, AUC_A < 0.5 on the "
                   "evaluation videos, runaway ratios, a mostly dead head); everything is still written.")
@verbosity
def train(cache_dir, labels_path, schedule, phases, iterations, loss, preset, epochs, min_steps, crop_bags, lr, weight_decay, batch_videos,
          lambda_small, lambda_large, lambda_fixed, lambda_max, beta, topk, dropout, hidden_dim, no_attention, init, seed, eval_labels, gt_path, eval_cache,
          train_gt, device, precision, out_dir, generated_footage, resume, strict):
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

    run = run_training(
        cache_dir, labels_path, out=out_dir, preset=preset, eval_cache=eval_cache, eval_labels=eval_labels, gt=gt_path,
        train_gt=train_gt, resume=resume, generated_footage=generated_footage, device=device, progress=not progress_disabled(),
        schedule=schedule, phases=tuple(p.strip() for p in phases.split(",") if p.strip()), iterations=iterations,
        loss=loss, epochs=epochs, min_steps=min_steps, crop_bags=crop_bags, lr=lr, weight_decay=weight_decay, batch_videos=batch_videos,
        lambda_small=lambda_small, lambda_large=lambda_large, lambda_fixed=lambda_fixed, lambda_max=lambda_max, beta=beta, topk=topk, seed=seed,
        precision=precision,
        detector={"dropout": dropout, "hidden_dim": hidden_dim, "attention": False if no_attention else None, "init": init},
    )
    last = run.final
    click.echo(json.dumps({"out": str(run.out), "model": str(run.model), "iterations": len(run.metrics),
                           "final": {"iteration": last["iteration"], "phase": last["phase"], "loss": last["loss"],
                                     **({k: last["eval"][k] for k in ("auc", "ap", "ap_trapezoid", "score_gap")} if "eval" in last else {})},
                           "health": {"ok": run.health["ok"], "warnings": len(run.health["warnings"])}}))
    if strict and not run.health["ok"]:
        raise RunFailure(f"--strict: the health check warned {len(run.health['warnings'])} time(s), first: {run.health['warnings'][0]} "
                         f"(all in {run.out / 'metrics.json'}, \"health\")")
