"""The losses of ARMS and of its baselines; one function per paper equation.

Every function takes snippet scores in [0, 1] as [B, T] tensors (one row per bag: a crop of a
video, docs/method.md (Training)) and returns a scalar averaged over the bags of the mini-batch.
The video-level MIL terms register by their `--loss` name in LOSSES.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vad.registry import Registry


@dataclass(frozen=True)
class VideoLoss:
    """A video-level MIL term as the trainer calls it: `fn(abnormal_scores, normal_scores, ...)`
    with, of a training step's settings, only those named in `settings` (lam: the abnormal ratio
    of each abnormal bag; k: the k of MS-MIL top-k), so each equation keeps its own signature."""

    name: str
    fn: Callable[..., torch.Tensor]
    settings: tuple[str, ...] = ()

    def __call__(self, abnormal_scores: torch.Tensor, normal_scores: torch.Tensor, **step_settings) -> torch.Tensor:
        return self.fn(abnormal_scores, normal_scores, **{key: step_settings[key] for key in self.settings})


LOSSES: Registry[VideoLoss] = Registry("loss")


def register_loss(name: str, *settings: str) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Decorator: register the function under `name`; it stays callable as written."""
    def register(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        LOSSES.add(name, VideoLoss(name, fn, settings))
        return fn
    return register


def abnormal_ratio(scores: torch.Tensor) -> torch.Tensor:
    """Eq. (3): r = (1/T) sum_t s_t, the expected ratio of abnormal snippets of each bag: [B]."""
    return scores.mean(dim=1)


@register_loss("ar", "lam")
def ar_mil_loss(abnormal_scores: torch.Tensor, normal_scores: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
    """Eq. (4): L_AR = r- + alpha * max(0, lambda - r+), alpha = 1/lambda (Sec. IV-B).

    lam is one ratio or one per abnormal bag (adaptive self-training); alpha follows it per bag.
    The two terms are averaged over their own bags, which equals the mean over (abnormal,
    normal) pairs of the paper's per-pair loss when both sides have the same number of bags.
    """
    lam = torch.as_tensor(lam, dtype=abnormal_scores.dtype, device=abnormal_scores.device)
    lam = lam.expand(abnormal_scores.shape[0])
    r_pos = abnormal_ratio(abnormal_scores)
    r_neg = abnormal_ratio(normal_scores)
    return r_neg.mean() + (torch.relu(lam - r_pos) / lam).mean()


@register_loss("ms-top1")
def ms_mil_top1_loss(abnormal_scores: torch.Tensor, normal_scores: torch.Tensor) -> torch.Tensor:
    """Eq. (1): max(0, 1 - max_t s+_t + max_t s-_t), bag i of one side paired with bag i of the other."""
    _check_pairs(abnormal_scores, normal_scores)
    return torch.relu(1 - abnormal_scores.max(dim=1).values + normal_scores.max(dim=1).values).mean()


@register_loss("ms-topk", "k")
def ms_mil_topk_loss(abnormal_scores: torch.Tensor, normal_scores: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Eq. (2): max(0, 1 - (1/k) sum of the k largest s+ + max_t s-_t); k = 3 as RTFM (Sec. IV-C)."""
    _check_pairs(abnormal_scores, normal_scores)
    k = min(k, abnormal_scores.shape[1])
    top_k = abnormal_scores.topk(k, dim=1).values.mean(dim=1)
    return torch.relu(1 - top_k + normal_scores.max(dim=1).values).mean()


def pseudo_label_bce(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The classification term of eq. (5): (1/N) sum_i BCE(s_i, y_i) over the N labelled snippets.

    labels: 1 abnormal, 0 normal, -1 unlabelled (the middle quartiles). No labelled snippet: 0.
    """
    # A masked mean rather than scores[mask]: boolean indexing (and an `if mask.any()`) reads the
    # mask back to the host, which makes a GPU wait at every training step.
    mask = (labels >= 0).to(scores.dtype)
    # Scores are sigmoid outputs; clamping keeps log() finite where the sigmoid saturates.
    bce = F.binary_cross_entropy(scores.clamp(1e-7, 1 - 1e-7), labels.clamp(min=0).to(scores.dtype), reduction="none")
    return (bce * mask).sum() / mask.sum().clamp(min=1)


def phase_loss(video_loss: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, beta: float = 0.5) -> torch.Tensor:
    """Eq. (5): L = L_AR-MIL + beta * (1/N) sum_i BCE(s_i, y_i), beta = 0.5 (Sec. IV-B).

    video_loss is the MIL term (AR-MIL for ARMS; MS-MIL for the traditional baseline, which uses
    the same pseudo-label term), scores/labels cover every bag of the mini-batch.
    """
    return video_loss + beta * pseudo_label_bce(scores, labels)


def _check_pairs(abnormal_scores: torch.Tensor, normal_scores: torch.Tensor) -> None:
    if abnormal_scores.shape[0] != normal_scores.shape[0]:
        raise ValueError(f"MS-MIL pairs abnormal and normal bags: got {abnormal_scores.shape[0]} and {normal_scores.shape[0]}")
