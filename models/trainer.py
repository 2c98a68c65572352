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
from copy import deepcopy
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch

from vad.errors import ConfigError, VadError
from vad.extract.cache import FeatureCache
from vad.hardware import native_bf16
from vad.models.detector import INITS, ARMSDetector, DetectorConfig
from vad.models.health import label_agreement
from vad.models.inference import score_bags
from vad.models.losses import LOSSES, phase_loss
from vad.models.phases import SCHEDULES, PhaseContext, get_phase
from vad.models.pooling import N_SEGMENTS, pool_segments, segment_bounds
from vad.models.pseudo import UNLABELLED, RatioUpdate, quartile_pseudo_labels
from vad.progress import progress_bar

log = logging.getLogger("vad")

CROP_BAGS = ("mean", "each")
PRECISIONS = ("auto", "fp32", "bf16")
# Floor on optimiser steps per iteration (bench/RESULTS.md, "Steps"): 40 epochs of the demo's 28
# clips are 40 steps, after which 72% of the 32-wide layer's units are still dead (28% live after
# HAM; 72% with 100 steps). More is not better: the worlds' 160 steps already leave no dead unit,
# and 500 lowered ARMS's AUC_A there by 0.024 (5 seeds).
MIN_STEPS = 100


@dataclass(frozen=True)
class TrainConfig:
    schedule: str = "arms"  # arms: Algorithm 1; traditional: the baseline (fixed loss + pseudo labels)
    phases: tuple[str, ...] = ("bst", "ham", "as")  # ARMS phases in order; the last one repeats
    iterations: int | None = None  # K; None: 6 when the last phase self-trains (as, ham, traditional), else one per phase
    loss: str = "ar"  # video-level loss of the traditional schedule: ar (eq. 4), ms-top1 (eq. 1), ms-topk (eq. 2)
    topk: int = 3  # k of MS-MIL top-k (RTFM's k = 3, Sec. IV-C)
    epochs: int = 50  # epochs per iteration (one epoch: every video of the larger class once)
    min_steps: int = MIN_STEPS  # floor on optimiser steps per iteration, so small sets are trained enough
    crop_bags: str = "mean"  # mean: a video's scores averaged over its crops before the loss (RTFM); each: every crop its own bag
    lr: float = 1e-4  # Adam learning rate
    weight_decay: float = 5e-4  # Adam weight decay (Sec. IV-B)
    batch_videos: int = 30  # videos per class per mini-batch (30 normal + 30 abnormal)
    lambda_small: float = 0.1  # bootstrapping ratio
    lambda_large: float = 0.4  # hard-anomaly-mining ratio
    lambda_fixed: float | None = None  # lambda of the traditional schedule with --loss ar; None: lambda_small
    lambda_max: float = 1.0  # cap on adaptive ratios; 1.0 = none, as the paper (a flat model drives eq. 6 to 1)
    beta: float = 0.5  # weight of the pseudo-label BCE (eq. 5)
    segments: int = N_SEGMENTS  # pooled segments per training bag (RTFM)
    # The detector every iteration initialises afresh (models/detector.py): hidden_dim 1024 as
    # Fig. 5 (smaller is much faster on CPU), dropout, attention (False: conv + MLP), init. Its
    # feature_dim is not a setting: training takes it from the features.
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    seed: int = 0  # seeds initialisation, dropout and sampling of every iteration
    device: str = "cpu"  # torch device of training
    # Autocast of the training steps (scoring stays fp32): fp32, bf16, or auto = fp32 on every
    # device (training_precision says why). Recorded per iteration and in metrics.json's arithmetic.
    precision: str = "auto"

    def validate(self) -> TrainConfig:
        schedule = SCHEDULES[self.schedule]
        LOSSES[self.loss]
        if not self.phases:
            raise ConfigError("no phases given")
        seen = set()
        for name in self.phases:
            get_phase(name)
            if name in seen:
                raise ConfigError(f"phase {name!r} listed twice")
            seen.add(name)
        if self.iterations is not None and self.iterations < 1:
            raise ConfigError("iterations must be at least 1")
        schedule.check(self)
        for name in ("lambda_small", "lambda_large"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in (0, 1]")
        if self.lambda_fixed is not None and not 0 < self.lambda_fixed <= 1:
            raise ConfigError("lambda_fixed must be in (0, 1]")
        if not 0 < self.lambda_max <= 1:
            raise ConfigError("lambda_max must be in (0, 1]")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r}: choose from {', '.join(PRECISIONS)}")
        if self.crop_bags not in CROP_BAGS:
            raise ConfigError(f"crop_bags {self.crop_bags!r}: choose from {', '.join(CROP_BAGS)}")
        if self.min_steps < 0:
            raise ConfigError("min_steps must be at least 0")
        for name in ("epochs", "batch_videos", "segments", "topk"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        detector = self.detector
        for name in ("hidden_dim", "heads", "kernel_size", "fc_dim"):
            if getattr(detector, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if detector.attention and detector.hidden_dim % detector.heads:
            raise ConfigError(f"hidden_dim must be a multiple of the {detector.heads} attention heads")
        if detector.init not in INITS:
            raise ConfigError(f"init {detector.init!r}: choose from {', '.join(INITS)}")
        for name in ("dropout", "attention_dropout"):
            if not 0 <= getattr(detector, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1)")
        return self

    def plan(self) -> list[str]:
        """The phase (or 'traditional') of each iteration k = 1..K."""
        return SCHEDULES[self.schedule].plan(self)

    def to_dict(self) -> dict:
        """Plain data, flat: the detector's fields (less feature_dim) sit among the training
        settings under their own names, where model files and metrics.json have always had
        dropout, hidden_dim, attention and init."""
        data: dict = {}
        for f in fields(self):
            if f.name == "detector":
                data.update((key, value) for key, value in self.detector.to_dict().items() if key != "feature_dim")
            else:
                data[f.name] = getattr(self, f.name)
        data["phases"] = list(self.phases)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """The inverse of to_dict. Files written before TrainConfig held a DetectorConfig store
        only its dropout, hidden_dim, attention and init; they trained with the defaults of the
        other fields, which is what the missing keys read as."""
        values = {f.name: data[f.name] for f in fields(cls) if f.name != "detector" and f.name in data}
        if "phases" in values:
            values["phases"] = tuple(values["phases"])
        return cls(**values, detector=DetectorConfig.from_dict(data))


# The paper's hyper-parameters (Sec. IV-B); presets are data, flags override them.
PRESETS: dict[str, dict] = {
    "sh": {"lr": 1e-3, "epochs": 300, "lambda_small": 0.1, "lambda_large": 0.42, "weight_decay": 5e-4, "beta": 0.5},
    "ucf": {"lr": 1e-4, "epochs": 50, "lambda_small": 0.22, "lambda_large": 0.4, "weight_decay": 5e-4, "beta": 0.5},
    "xd": {"lr": 1e-4, "epochs": 50, "lambda_small": 0.1, "lambda_large": 0.4, "weight_decay": 5e-4, "beta": 0.5},
}


def make_config(preset: str | None = None, *, detector: DetectorConfig | dict | None = None, **overrides) -> TrainConfig:
    """Defaults, then the preset, then every override that is not None; validated once.

    detector: a DetectorConfig, or overrides of the default detector's fields (again, None
    values keep the default), e.g. {"hidden_dim": 128, "attention": False}.
    """
    values: dict = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    names = {f.name for f in fields(TrainConfig)} - {"detector"}
    for key, value in overrides.items():
        if key not in names:
            hint = f" (a detector field: pass detector={{{key!r}: ...}})" if key in DetectorConfig.__dataclass_fields__ else ""
            raise ConfigError(f"TrainConfig has no field {key!r}{hint}")
        if value is not None:
            values[key] = tuple(value) if key == "phases" else value
    if isinstance(detector, dict):
        for key in detector:
            if key not in DetectorConfig.__dataclass_fields__:
                raise ConfigError(f"DetectorConfig has no field {key!r}")
        detector = DetectorConfig(**{key: value for key, value in detector.items() if value is not None})
    if detector is not None:
        values["detector"] = detector
    return TrainConfig(**values).validate()


@dataclass
class TrainingSet:
    normal_ids: list[str]
    abnormal_ids: list[str]
    normal: torch.Tensor  # [Nn, C, S, D] pooled bags
    abnormal: torch.Tensor  # [Na, C, S, D]
    n_snippets: dict[str, int]  # T of every video (maps segments back to frames)
    n_frames: dict[str, int]  # from the cache metadata, else 16 * T
    # the extraction precisions the cache entries record ("unknown" for imported features)
    feature_precisions: tuple[str, ...] = ()

    @property
    def crops(self) -> int:
        return int(self.abnormal.shape[1])

    @property
    def feature_dim(self) -> int:
        return int(self.abnormal.shape[-1])


def load_training_set(cache: FeatureCache, labels: dict[str, int], segments: int = N_SEGMENTS, progress: bool = True) -> TrainingSet:
    """Pool every labelled video of the cache to [C, segments, D] (RTFM's 32 segments)."""
    pooled: dict[int, list[np.ndarray]] = {0: [], 1: []}
    ids: dict[int, list[str]] = {0: [], 1: []}
    n_snippets, n_frames, precisions = {}, {}, set()
    for video_id, label in progress_bar(labels.items(), desc="loading features", unit="video", disable=not progress):
        features = cache.load(video_id)
        meta = cache.meta(video_id)
        n_snippets[video_id] = int(features.shape[0])
        n_frames[video_id] = int(meta.get("n_frames") or 16 * features.shape[0])
        precisions.add(str(meta.get("precision", "unknown")))
        pooled[label].append(np.swapaxes(pool_segments(features, segments), 0, 1))  # [C, S, D]
        ids[label].append(video_id)
    for label, name in ((0, "normal"), (1, "abnormal")):
        if not ids[label]:
            raise VadError(f"the labels name no {name} video; training needs both classes")
    shapes = {p.shape[:1] + p.shape[2:] for p in pooled[0] + pooled[1]}
    if len(shapes) != 1:
        raise VadError(f"videos differ in crops or feature size: {sorted(shapes)}")
    return TrainingSet(
        normal_ids=ids[0], abnormal_ids=ids[1],
        normal=torch.from_numpy(np.stack(pooled[0])), abnormal=torch.from_numpy(np.stack(pooled[1])),
        n_snippets=n_snippets, n_frames=n_frames, feature_precisions=tuple(sorted(precisions)),
    )


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
    device = torch.device(config.device)
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
        losses = _fit(model, normal, abnormal, update.ratios, labels, setup.loss, config, rng, steps,
                      desc=f"iteration {k}/{len(plan)} {name}", progress=progress)
        scores = crop_average_scores(model, abnormal)
        normal_scores = crop_average_scores(model, normal)
        pseudo = np.stack([quartile_pseudo_labels(s) for s in scores])
        runaway = _ratio_runaway(update, name, config.lambda_max)
        metrics = {
            "iteration": k, "phase": name, "steps": steps, "loss": losses[-1], "loss_curve": losses,
            "precision": training_precision(config), "optimizer": f"adam-{adam_implementation(device)}",
            "lambda": {**_ratio_stats(update), "runaway": runaway},
            "pseudo_labels": _label_counts(pseudo, normal_scores.shape),
            "pseudo_labels_used": labels is not None,
            "pseudo_label_agreement": label_agreement(previous_labels, pseudo, UNLABELLED),
            "train_monitors": _monitors(scores, normal_scores),
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


def training_precision(config: TrainConfig) -> str:
    """config.precision with auto resolved: fp32 on every device, AMX CPUs included.

    bf16 is an opt-in. Paired runs (5 seeds, bench/PRECISION.md, "Training") moved the held-out
    AUC of two demos by -0.063 to +0.023 per seed and of the worlds by up to 0.020, well past the
    0.005 a default must keep to fp32, while training the demo 1.8x faster on an AMX Xeon. With
    fp32, one seed trains one model on every CPU up to float rounding."""
    return "fp32" if config.precision == "auto" else config.precision


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


def _fit(model, normal, abnormal, ratios, labels, loss_name, config: TrainConfig, rng, steps: int, desc: str, progress: bool) -> list[float]:
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


@torch.no_grad()
def detector_monitors(model: ARMSDetector, abnormal: torch.Tensor, normal: torch.Tensor, batch_size: int = 256) -> dict:
    """What the network itself does on the training bags (eval mode).

    active_units: share of the 32-wide layer's units that fire (ReLU > 0) on at least one
    training segment; dead units never do. gate: the attention gate's BatchNorm weight and bias
    (0 at initialisation) and the norm of the gated branch against the per-snippet path's.
    """
    model.eval()
    bags = torch.cat([abnormal, normal]).flatten(0, 1)  # [N*C, S, D]
    fired = torch.zeros(model.config.fc_dim, dtype=torch.bool)
    path_norm = branch_norm = 0.0
    for i in range(0, bags.shape[0], batch_size):
        x = bags[i:i + batch_size]
        h = model.snippet_path(x)
        if model.config.attention:
            branch = model.attention_branch(h)
            path_norm += float(h.norm(dim=-1).sum())
            branch_norm += float(branch.norm(dim=-1).sum())
            h = h + branch
        fired |= (torch.relu(model.fc1(h)) > 0).flatten(0, 1).any(dim=0).cpu()
    result = {"active_units": float(fired.float().mean())}
    if model.config.attention:
        result["gate"] = {"weight_abs_mean": float(model.gate.weight.abs().mean()), "bias_abs_mean": float(model.gate.bias.abs().mean()),
                          "branch_to_path_norm": branch_norm / path_norm if path_norm else None}
    return result


SATURATED_LOGIT = 6.0  # |z| beyond this: sigmoid within 0.0025 of 0 or 1, where gradients vanish


@torch.no_grad()
def mode_monitors(model: ARMSDetector, abnormal: torch.Tensor, normal: torch.Tensor) -> dict:
    """What the loss saw against what scoring sees. The pseudo labels, the monitors and `vad score`
    use eval mode; the loss saw train mode: dropout on, and the attention gate's BatchNorm on batch
    statistics. `train_mode` scores a copy in train mode, abnormal and normal bags in each batch as
    the loss's batches mix them (the global RNG left untouched), so a detector that is only flat in
    eval mode shows. `pre_sigmoid`: eval-mode logits of the training bags, and the share saturated
    past |z| = 6."""
    bags = torch.cat([abnormal, normal])
    n, c, s, _ = bags.shape
    model.eval()
    logits = torch.cat([model.logits(bags[i:i + 256].flatten(0, 1)) for i in range(0, n, 256)]).float()
    eval_scores = torch.sigmoid(logits).view(n, c, s).mean(dim=1)[: len(abnormal)]
    twin = deepcopy(model).train()  # a copy: train-mode BatchNorm would move the model's running statistics
    train_scores, step = [], 64
    with torch.random.fork_rng(devices=[bags.device] if bags.device.type == "cuda" else []):  # dropout must not move training's RNG
        for i in range(0, len(abnormal), step):
            batch = torch.cat([abnormal[i:i + step], normal[i:i + step]])
            train_scores.append(twin(batch.flatten(0, 1)).float().view(len(batch), c, s).mean(dim=1)[: len(abnormal[i:i + step])])
    train_scores = torch.cat(train_scores)
    return {
        "train_mode": {"abnormal_video_mean": float(train_scores.mean()), "abnormal_within_video_std": float(train_scores.std(dim=1).mean()),
                       "mean_abs_difference_from_eval": float((train_scores - eval_scores).abs().mean())},
        "pre_sigmoid": {"mean": float(logits.mean()), "std": float(logits.std()),
                        "saturated_share": float((logits.abs() > SATURATED_LOGIT).float().mean())},
    }


def _label_counts(pseudo: np.ndarray, normal_shape: tuple) -> dict:
    return {"abnormal_videos_1": int((pseudo == 1).sum()), "abnormal_videos_0": int((pseudo == 0).sum()),
            "unlabelled": int((pseudo == UNLABELLED).sum()), "normal_videos_0": int(np.prod(normal_shape))}


def _monitors(abnormal_scores: np.ndarray, normal_scores: np.ndarray) -> dict:
    """A flat model raises whole abnormal videos; watch the spread inside them."""
    return {
        "abnormal_video_mean": float(abnormal_scores.mean()),
        "normal_video_mean": float(normal_scores.mean()),
        "abnormal_within_video_std": float(abnormal_scores.std(axis=1).mean()),
        "normal_within_video_std": float(normal_scores.std(axis=1).mean()),
        "abnormal_share_above_0.5": float((abnormal_scores > 0.5).mean()),
    }


def segment_truth(intervals: list[tuple[int, int]], n_snippets: int, n_frames: int, segments: int) -> np.ndarray:
    """1 where at least half of a pooled segment's frames lie in a GT interval."""
    frames = np.zeros(max(n_frames, 16 * n_snippets), dtype=np.float64)
    for start, end in intervals:
        frames[start:end] = 1
    frames = frames[:n_frames]
    bounds = segment_bounds(n_snippets, segments)
    truth = np.zeros(segments, dtype=np.int8)
    for i in range(segments):
        lo = min(bounds[i], n_snippets - 1)
        hi = max(bounds[i + 1], lo + 1)
        part = frames[16 * lo: min(16 * hi, n_frames)]
        truth[i] = int(part.size > 0 and part.mean() >= 0.5)
    return truth


def pseudo_label_precision(pseudo: np.ndarray, data: TrainingSet, train_gt: dict, segments: int) -> dict:
    """Table VI: how many pseudo labels of the abnormal training videos agree with frame GT.

    Only abnormal videos that have GT intervals count (a GT file that lacks a video says nothing
    about it). precision: all labelled segments; abnormal/normal: segments labelled 1 / 0;
    abnormal_recall: the GT-abnormal segments that are labelled 1.
    """
    hits = {0: [0, 0], 1: [0, 0]}
    videos = abnormal_segments = 0
    for row, video_id in zip(pseudo, data.abnormal_ids):
        if not train_gt.get(video_id):
            continue
        videos += 1
        truth = segment_truth(train_gt[video_id], data.n_snippets[video_id], data.n_frames[video_id], segments)
        abnormal_segments += int(truth.sum())
        for label in (0, 1):
            chosen = row == label
            hits[label][0] += int((truth[chosen] == label).sum())
            hits[label][1] += int(chosen.sum())
    ratio = lambda a, b: a / b if b else None
    return {
        "videos": videos,
        "precision": ratio(hits[0][0] + hits[1][0], hits[0][1] + hits[1][1]),
        "abnormal_precision": ratio(*hits[1]),
        "normal_precision": ratio(*hits[0]),
        "abnormal_recall": ratio(hits[1][0], abnormal_segments),  # GT-abnormal segments labelled 1
    }
