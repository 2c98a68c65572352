"""Multi-phase self-training (Algorithm 1) and the traditional self-training baseline (the schedules: models/phases.py).

One iteration = a freshly initialised detector trained for a number of optimiser steps on
mini-batches of `batch_videos` normal + `batch_videos` abnormal videos (32 pooled segments per
bag), then scored on every training video to produce the next iteration's pseudo labels
(quartiles, Fig. 4a) and, for adaptive self-training, the next abnormal ratios (eq. 6).

Steps, not passes: an iteration runs max(epochs x steps per epoch, min_steps) steps, where an
epoch is one pass over the larger class. RTFM counts its training in steps (15,000); counting
passes alone gives a 28-clip set a few dozen steps per iteration, too few to train the head.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from vad.errors import VadError
from vad.extract.engine import resolve_device
from vad.hardware import native_bf16
from vad.models.config import TrainConfig, training_precision
from vad.models.data import TrainingSet
from vad.models.detector import ARMSDetector
from vad.models.health import label_agreement
from vad.models.inference import score_bags
from vad.models.losses import LOSSES, phase_loss
from vad.models.monitors import detector_monitors, label_counts, mode_monitors, pseudo_label_precision, score_monitors
from vad.models.phases import SCHEDULES, PhaseContext
from vad.models.pseudo import UNLABELLED, RatioUpdate, quartile_pseudo_labels
from vad.progress import progress_bar

log = logging.getLogger("vad")

class IndexStream:
    """Endless random permutations of 0..n-1, cut into batches: every video once per pass, and
    the class with fewer videos than a batch or an epoch repeats (sampling with replacement)."""

    def __init__(self, n: int, rng: np.random.Generator):
        self.n, self.rng, self.buffer = n, rng, np.empty(0, dtype=np.int64)

    def take(self, size: int) -> np.ndarray:
        while len(self.buffer) < size:
            self.buffer = np.concatenate([self.buffer, self.rng.permutation(self.n)])
        batch, self.buffer = self.buffer[:size], self.buffer[size:]
        return batch


@dataclass
class IterationResult:
    iteration: int  # k, from 1
    phase: str  # bst / ham / as / traditional
    model: ARMSDetector
    ratios: np.ndarray  # lambda each abnormal video used in this iteration (AR-MIL)
    abnormal_scores: np.ndarray  # [Na, S] this model's crop-averaged scores of the abnormal training videos
    pseudo_labels: np.ndarray  # [Na, S] quartile labels from this model, for the next iteration
    metrics: dict = field(default_factory=dict)


@dataclass
class ResumeState:
    """What the next iteration needs from the previous one (from its checkpoint)."""

    iteration: int  # the last finished k
    model: ARMSDetector
    ratios: np.ndarray


def build_model(config: TrainConfig, feature_dim: int) -> ARMSDetector:
    return ARMSDetector(replace(config.detector, feature_dim=feature_dim))


def crop_average_scores(model: ARMSDetector, bags: torch.Tensor) -> np.ndarray:
    """bags [N, C, S, D] -> [N, S]: every crop scored separately, then averaged."""
    n, c, s, d = bags.shape
    return score_bags(model, bags.reshape(n * c, s, d)).reshape(n, c, s).mean(dim=1).numpy().astype(np.float64)


def train(
    config: TrainConfig,
    data: TrainingSet,
    *,
    on_iteration: Callable[[IterationResult], None] | None = None,
    resume: ResumeState | None = None,
    progress: bool = True,
    train_gt: dict[str, list[tuple[int, int]]] | None = None,
) -> IterationResult:
    """Run every iteration of config.plan() (from resume.iteration + 1 when resuming)."""
    device = resolve_device(config.device)
    if training_precision(config) == "bf16" and not native_bf16(device):
        log.warning("precision bf16 on %s: no bf16 hardware there, so it is emulated and slower than fp32", device)
    normal, abnormal = data.normal.to(device), data.abnormal.to(device)
    schedule = SCHEDULES[config.schedule]
    plan = schedule.plan(config)
    n_abnormal = len(data.abnormal_ids)
    previous_scores = previous_labels = previous_ratios = None
    start = 1
    if resume is not None:
        start = resume.iteration + 1
        previous_ratios = resume.ratios
        previous_scores = crop_average_scores(resume.model.to(device), abnormal)
        previous_labels = np.stack([quartile_pseudo_labels(s) for s in previous_scores])
    result = None
    for k in range(start, len(plan) + 1):
        name = plan[k - 1]
        setup = schedule.setup(config, k, name, PhaseContext(n_abnormal, config.lambda_small, config.lambda_large, previous_ratios,
                                                             None if previous_scores is None else list(previous_scores), config.lambda_max))
        update = setup.ratios
        labels = previous_labels if setup.uses_pseudo_labels else None
        if setup.uses_pseudo_labels and labels is None:
            log.warning("iteration %d (%s): no previous iteration, so no pseudo labels; training on video labels only", k, name)
        torch.manual_seed(config.seed * 1000 + k)  # re-initialisation and dropout of iteration k
        rng = np.random.default_rng([config.seed, k])  # mini-batch sampling of iteration k
        model = build_model(config, data.feature_dim).to(device)
        steps = iteration_steps(config, normal.shape[0], abnormal.shape[0])
        losses = _fit(model, normal, abnormal, update.ratios, labels, setup.loss, config=config, rng=rng, steps=steps,
                      desc=f"iteration {k}/{len(plan)} {name}", progress=progress)
        scores = crop_average_scores(model, abnormal)
        normal_scores = crop_average_scores(model, normal)
        pseudo = np.stack([quartile_pseudo_labels(s) for s in scores])
        runaway = _ratio_runaway(update, name, config.lambda_max)
        metrics = {
            "iteration": k, "phase": name, "steps": steps, "loss": losses[-1], "loss_curve": losses,
            "precision": training_precision(config), "optimizer": f"adam-{adam_implementation(device)}",
            "lambda": {**_ratio_stats(update), "runaway": runaway},
            "pseudo_labels": label_counts(pseudo, normal_scores.shape),
            "pseudo_labels_used": labels is not None,
            "pseudo_label_agreement": label_agreement(previous_labels, pseudo, UNLABELLED),
            "train_monitors": score_monitors(scores, normal_scores),
            "detector": detector_monitors(model, abnormal, normal),
            **mode_monitors(model, abnormal, normal),
        }
        if train_gt is not None:
            metrics["pseudo_label_precision"] = pseudo_label_precision(pseudo, data, train_gt, config.segments)
        result = IterationResult(k, name, model, update.ratios, scores, pseudo, metrics)
        if on_iteration is not None:
            on_iteration(result)
        previous_scores, previous_labels, previous_ratios = scores, pseudo, update.ratios
    if result is None:
        raise VadError(f"nothing to do: all {len(plan)} iterations are already finished")
    return result


def steps_per_epoch(config: TrainConfig, n_normal: int, n_abnormal: int) -> int:
    """Mini-batches in one pass over the larger class."""
    return math.ceil(max(n_normal, n_abnormal) / config.batch_videos)


def iteration_steps(config: TrainConfig, n_normal: int, n_abnormal: int) -> int:
    """Optimiser steps of one iteration: `epochs` passes over the larger class, at least `min_steps`."""
    return max(config.epochs * steps_per_epoch(config, n_normal, n_abnormal), config.min_steps)


def bag_scores(model: ARMSDetector, bags: torch.Tensor, crop_bags: str) -> torch.Tensor:
    """bags [B, C, S, D] -> training scores: [B, S] averaged over crops (mean, RTFM's
    `scores.view(bs, ncrops, -1).mean(1)`), or [B*C, S] with every crop its own bag (each)."""
    b, c = bags.shape[:2]
    # fp32 from here on under bf16 autocast: a bf16 mean over crops or segments keeps 3 digits,
    # and binary_cross_entropy refuses autocast.
    scores = model(bags.flatten(0, 1)).float()
    return scores.view(b, c, -1).mean(dim=1) if crop_bags == "mean" else scores


def adam_implementation(device: torch.device) -> str:
    """fused on CUDA (one kernel for all tensors instead of several per tensor), foreach elsewhere.

    PyTorch's default on the CPU is the per-tensor loop (`_single_tensor_adam`). foreach computes
    its update bit for bit, a little faster (D = 2048 detector, 2 AVX2 cores: 36.7 -> 32.4 ms per
    step); the CPU's fused kernel is faster still (10.5 ms) but rounds differently, and Adam blows
    that rounding up to whole lr-sized steps on the attention biases, whose gradients are at noise
    level (the key bias gets none), so training would leave its old trajectory to save about 2% of
    a step (bench/TRAINING.md)."""
    return "fused" if device.type == "cuda" else "foreach"


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Adam:
    """The trainer's Adam; every implementation computes the same update up to float rounding."""
    device = next(model.parameters()).device
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                            **{adam_implementation(device): True})


def _sample_batches(normal_stream: IndexStream, abnormal_stream: IndexStream, steps: int, size: int,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Every step's (normal, abnormal) video indices, [steps, size] each, drawn up front in the order
    the steps take them (the two streams share one generator) and copied to the device once."""
    draws = [(normal_stream.take(size), abnormal_stream.take(size)) for _ in range(steps)]
    normal, abnormal = (torch.as_tensor(np.stack(side), device=device) for side in zip(*draws))
    return normal, abnormal


def _fit(model, normal, abnormal, ratios, labels, loss_name, *, config: TrainConfig, rng, steps: int, desc: str, progress: bool) -> list[float]:
    """Train for `steps` steps; returns the mean loss of each epoch-sized block of steps."""
    optimizer = make_optimizer(model, config)
    device = normal.device
    bf16 = training_precision(config) == "bf16"
    repeat = abnormal.shape[1] if config.crop_bags == "each" else 1  # bags per video
    ratio_t = torch.as_tensor(ratios, dtype=torch.float32, device=device)
    label_t = None if labels is None else torch.as_tensor(labels, dtype=torch.int64, device=device)
    normal_idx, abnormal_idx = _sample_batches(IndexStream(normal.shape[0], rng), IndexStream(abnormal.shape[0], rng),
                                               steps, config.batch_videos, device)
    mil_term = LOSSES[loss_name]  # the video-level term (eq. 4, 1 or 2)
    block = steps_per_epoch(config, normal.shape[0], abnormal.shape[0])
    losses, total = [], []
    model.train()
    bar = progress_bar(range(steps), desc=desc, unit="step", disable=not progress, leave=False, mininterval=1.0)
    for step in bar:
        ni, ai = normal_idx[step], abnormal_idx[step]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            both = bag_scores(model, torch.cat([abnormal[ai], normal[ni]]), config.crop_bags)
        sa, sn = both[: len(ai) * repeat], both[len(ai) * repeat:]
        video_loss = mil_term(sa, sn, lam=ratio_t[ai].repeat_interleave(repeat), k=config.topk)
        if label_t is not None:
            bag_labels = torch.cat([label_t[ai].repeat_interleave(repeat, dim=0), torch.zeros_like(sn, dtype=torch.int64)])
            loss = phase_loss(video_loss, both, bag_labels, config.beta)
        else:
            loss = video_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total.append(loss.detach())  # read once per block: a float() per step would wait for the GPU every step
        if len(total) == block or step == steps - 1:
            losses.append(torch.stack(total).cpu().double().mean().item())
            total = []
            bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
    return losses


# Mean adaptive ratio above which eq. 6 is most likely feeding on flat scores rather than on
# events: bench/RESULTS.md saw it climb 0.40 -> 0.74 -> 0.88 against a true share of ~0.33.
RATIO_RUNAWAY = 0.6


def _ratio_runaway(update: RatioUpdate, phase: str, lambda_max: float) -> bool:
    """Warn when adaptive self-training asks every abnormal video for most of its snippets."""
    mean = float(np.mean(update.ratios)) if len(update.ratios) else 0.0
    if phase != "as" or mean <= RATIO_RUNAWAY:
        return False
    if lambda_max >= 1.0:
        log.warning("adaptive ratios run away (mean lambda %.2f > %.1f): abnormal videos score high as a whole, "
                    "so eq. 6 counts most of their snippets as abnormal; consider --lambda-max 0.5 (bench/RESULTS.md)", mean, RATIO_RUNAWAY)
    return True


def _ratio_stats(update: RatioUpdate) -> dict:
    r = update.ratios
    return {"mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()), "max": float(r.max()),
            "guard_fired": update.guarded, "estimate_mean": float(update.estimates.mean())}
