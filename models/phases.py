"""The phases of Algorithm 1 as a registry: `--phases bst,ham,as` names them in order.

A phase decides two things for the iteration it runs: the abnormal ratio lambda of each
abnormal video, and whether the pseudo labels of the previous iteration join the loss (eq. 5).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from vad.registry import Registry
from vad.models.pseudo import RatioUpdate, adaptive_ratios


@dataclass(frozen=True)
class PhaseContext:
    n_abnormal: int  # abnormal training videos
    lambda_small: float  # bootstrapping ratio (Sec. IV-B)
    lambda_large: float  # hard-anomaly-mining ratio (Sec. IV-B)
    previous_ratios: np.ndarray | None  # the lambda each abnormal video used in the previous iteration
    previous_scores: list[np.ndarray] | None  # previous model's scores of each abnormal video
    lambda_max: float = 1.0  # cap on adaptive ratios (1.0: none, as the paper)


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    uses_pseudo_labels: bool  # eq. (5) instead of eq. (4) alone
    needs_previous_iteration: bool  # cannot run first
    ratios: Callable[[PhaseContext], RatioUpdate]


PHASES: Registry[Phase] = Registry("phase")


def register_phase(phase: Phase) -> Phase:
    return PHASES.add(phase.name, phase)


def get_phase(name: str) -> Phase:
    return PHASES[name]


def _fixed(value: float, n: int) -> RatioUpdate:
    ratios = np.full(n, value, dtype=np.float64)
    return RatioUpdate(ratios=ratios, estimates=ratios.copy(), guarded=0)


register_phase(Phase(
    name="bst", title="bootstrapping: AR-MIL with lambda_small, video labels only (Alg. 1 l. 4-7)",
    uses_pseudo_labels=False, needs_previous_iteration=False,
    ratios=lambda ctx: _fixed(ctx.lambda_small, ctx.n_abnormal),
))
register_phase(Phase(
    name="ham", title="hard-anomaly mining: AR-MIL with lambda_large + pseudo-label BCE (Alg. 1 l. 9-12)",
    uses_pseudo_labels=True, needs_previous_iteration=False,
    ratios=lambda ctx: _fixed(ctx.lambda_large, ctx.n_abnormal),
))
register_phase(Phase(
    name="as", title="adaptive self-training: per-video lambda by eq. (6) + pseudo-label BCE (Alg. 1 l. 14-17)",
    uses_pseudo_labels=True, needs_previous_iteration=True,
    ratios=lambda ctx: adaptive_ratios(ctx.previous_scores, ctx.previous_ratios, max_ratio=ctx.lambda_max),
))
