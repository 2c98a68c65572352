"""The phases of Algorithm 1 and the training schedules, as registries.

A phase (`--phases bst,ham,as` names them in order) decides two things for the iteration it
runs: the abnormal ratio lambda of each abnormal video, and whether the pseudo labels of the
previous iteration join the loss (eq. 5).

A schedule (`--schedule`) decides the whole run: which iterations there are, and for each one
the ratios, the pseudo labels and the video-level loss. arms runs the phases (Algorithm 1);
traditional is the baseline self-training, one fixed loss and ratio in every iteration.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vad.errors import ConfigError
from vad.models.pseudo import RatioUpdate, adaptive_ratios
from vad.registry import Registry

if TYPE_CHECKING:
    from vad.models.config import TrainConfig


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


@dataclass(frozen=True)
class IterationSetup:
    """What a schedule sets for one iteration."""

    ratios: RatioUpdate  # the lambda of each abnormal video (eq. 4)
    uses_pseudo_labels: bool  # the previous iteration's pseudo labels join the loss (eq. 5)
    loss: str  # the video-level term, a name in vad.models.losses.LOSSES


@dataclass(frozen=True)
class Schedule:
    name: str
    title: str
    plan: Callable[[TrainConfig], list[str]]  # the phase (or the schedule's name) of each iteration k = 1..K
    setup: Callable[[TrainConfig, int, str, PhaseContext], IterationSetup]  # (config, k, plan entry, context)
    check: Callable[[TrainConfig], None]  # raises ConfigError for settings the schedule cannot run


SCHEDULES: Registry[Schedule] = Registry("schedule")


def register_schedule(schedule: Schedule) -> Schedule:
    return SCHEDULES.add(schedule.name, schedule)


def _arms_plan(config: TrainConfig) -> list[str]:
    last_repeats = get_phase(config.phases[-1]).uses_pseudo_labels
    k = config.iterations or (6 if last_repeats else len(config.phases))
    return [*config.phases, *[config.phases[-1]] * (k - len(config.phases))]


def _arms_setup(config: TrainConfig, k: int, entry: str, ctx: PhaseContext) -> IterationSetup:
    phase = get_phase(entry)
    return IterationSetup(phase.ratios(ctx), phase.uses_pseudo_labels, "ar")


def _arms_check(config: TrainConfig) -> None:
    if config.loss != "ar":
        raise ConfigError("the arms schedule trains with AR-MIL; MS-MIL losses belong to --schedule traditional")
    if get_phase(config.phases[0]).needs_previous_iteration:
        raise ConfigError(f"phase {config.phases[0]!r} needs a previous iteration's scores; put bst (or ham) before it")
    if config.iterations is not None and config.iterations < len(config.phases):
        raise ConfigError(f"{len(config.phases)} phases need at least {len(config.phases)} iterations")


def _traditional_setup(config: TrainConfig, k: int, entry: str, ctx: PhaseContext) -> IterationSetup:
    lam = config.lambda_fixed if config.lambda_fixed is not None else config.lambda_small
    # Pseudo labels from the second iteration on: the first has no previous model to take them from.
    return IterationSetup(RatioUpdate(np.full(ctx.n_abnormal, lam), np.full(ctx.n_abnormal, lam), 0), k > 1, config.loss)


register_schedule(Schedule(
    name="arms", title="multi-phase self-training: the phases in order, the last one repeated (Algorithm 1)",
    plan=_arms_plan, setup=_arms_setup, check=_arms_check,
))
register_schedule(Schedule(
    name="traditional", title="traditional self-training: one loss and a fixed lambda, pseudo labels of the previous iteration",
    plan=lambda config: ["traditional"] * (config.iterations or 6), setup=_traditional_setup, check=lambda config: None,
))
