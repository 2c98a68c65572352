"""Pseudo labels and abnormal ratios between self-training iterations (Sec. III-E, Fig. 4)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNLABELLED = -1


def quartile_pseudo_labels(scores: np.ndarray) -> np.ndarray:
    """Fig. 4(a): in an abnormal video the top quartile of scores -> 1, the bottom quartile -> 0,
    the rest unlabelled (-1). Quartiles are counted in snippets (k = T // 4, at least 1) and ties
    are broken by position (stable sort) so the label count never depends on equal scores."""
    scores = np.asarray(scores)
    n = len(scores)
    labels = np.full(n, UNLABELLED, dtype=np.int8)
    k = max(1, n // 4) if n >= 2 else 0
    order = np.argsort(scores, kind="stable")
    if k:
        labels[order[:k]] = 0
        labels[order[n - k:]] = 1
    return labels


def estimate_abnormal_ratio(scores: np.ndarray, threshold: float) -> float:
    """Eq. (6): lambda = (1/T) sum_t 1(s_t >= mu), mu = the ratio the video used last iteration."""
    scores = np.asarray(scores)
    return float((scores >= threshold).mean())


@dataclass
class RatioUpdate:
    ratios: np.ndarray  # the new lambda of every abnormal video
    estimates: np.ndarray  # eq. (6) before the guard
    guarded: int  # videos whose estimate was 0 and kept their previous lambda


def adaptive_ratios(scores: list[np.ndarray], previous: np.ndarray, min_ratio: float = 0.0, max_ratio: float = 1.0) -> RatioUpdate:
    """Adaptive self-training's per-video lambda (eq. 6) with its guard.

    An estimate of 0 (no snippet reaches mu) would make alpha = 1/lambda infinite and the
    AR-MIL term vacuous, so such a video keeps its previous lambda; so does one at or below
    min_ratio. The count is reported in metrics.json. max_ratio caps the estimates (1.0: no cap).
    """
    estimates = np.array([estimate_abnormal_ratio(s, mu) for s, mu in zip(scores, previous)], dtype=np.float64)
    keep = estimates <= min_ratio
    ratios = np.minimum(np.where(keep, previous, estimates), max_ratio)
    return RatioUpdate(ratios=ratios, estimates=estimates, guarded=int(keep.sum()))
