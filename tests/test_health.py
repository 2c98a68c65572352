"""The health check of a training run (models/health.py): what it flags, and what it leaves alone."""
from __future__ import annotations

import numpy as np
import pytest

from vad.models.health import FLAT_STD, describe, health, label_agreement


def iteration(k: int, phase: str, std: float = 0.2, *, used: bool = True, agreement: float | None = 0.9, auc_a: float | None = None,
              runaway: bool = False, lam: float = 0.3, active: float = 0.8) -> dict:
    it = {"iteration": k, "phase": phase, "train_monitors": {"abnormal_within_video_std": std}, "pseudo_labels_used": used,
          "pseudo_label_agreement": agreement, "lambda": {"mean": lam, "runaway": runaway}, "detector": {"active_units": active}}
    if auc_a is not None:
        it["eval"] = {"auc_abnormal": auc_a}
    return it


def healthy() -> list[dict]:
    return [iteration(1, "bst", used=False, agreement=None), iteration(2, "ham"), iteration(3, "as")]


def test_a_healthy_run_has_no_warnings():
    summary = health(healthy())
    assert summary["ok"] and summary["warnings"] == []
    assert summary["flat_iterations"] == summary["anti_localised_iterations"] == []
    assert summary["pseudo_label_agreement"] == [None, 0.9, 0.9]
    assert describe(summary) == ("health: flat iterations none; lambda runaway none; live units at the end 80%; "
                                 "pseudo-label agreement with the previous iteration [-, 0.90, 0.90]")


def test_a_flat_bootstrap_whose_labels_train_the_next_phase_is_named():
    """The reported failure: BST ends flat, HAM takes its pseudo labels, the run ends looking fine."""
    run = healthy()
    run[0]["train_monitors"]["abnormal_within_video_std"] = 0.009
    summary = health(run)
    assert not summary["ok"] and summary["flat_iterations"] == [1]
    (warning,) = summary["warnings"]
    assert warning.startswith("iteration 1 (bst) ended flat (abnormal within-video std 0.009 < 0.05), and iteration 2 (ham) trained on")
    assert "--min-steps" in warning


def test_a_flat_iteration_nobody_learned_from_is_listed_but_not_warned():
    run = healthy()
    run[1]["train_monitors"]["abnormal_within_video_std"] = FLAT_STD / 2
    run[2]["pseudo_labels_used"] = False
    summary = health(run)
    assert summary["flat_iterations"] == [2] and summary["ok"]


def test_a_flat_final_detector_warns_with_what_to_try():
    run = healthy()
    run[-1]["train_monitors"]["abnormal_within_video_std"] = 0.01
    (warning,) = health(run)["warnings"]
    assert warning.startswith("iteration 3 (as) ended flat") and "--init torch" in warning and "ms-top1" in warning


@pytest.mark.parametrize("change, expected", [
    (dict(agreement=0.3), "iteration 3 (as): its pseudo labels agree with the previous iteration's on only 30% of segments"),
    (dict(auc_a=0.319), "iteration 3 (as): AUC_A 0.319 < 0.5 on the evaluation videos"),
    (dict(runaway=True, lam=0.76), "iteration 3 (as): adaptive ratios ran away (mean lambda 0.76)"),
    (dict(active=0.1), "iteration 3 (as): only 10% of the 32-wide layer's units fire"),
])
def test_each_problem_of_the_last_iteration_is_one_warning(change, expected):
    run = healthy()[:2] + [iteration(3, "as", **change)]
    summary = health(run)
    assert [w[:len(expected)] for w in summary["warnings"]] == [expected]
    assert not summary["ok"]


def test_an_anti_localised_iteration_that_recovered_is_recorded_not_warned():
    run = healthy()
    run[1]["eval"] = {"auc_abnormal": 0.42}
    run[2]["eval"] = {"auc_abnormal": 0.71}
    summary = health(run)
    assert summary["anti_localised_iterations"] == [2] and summary["ok"]


def test_label_agreement_counts_segments_labelled_in_both():
    previous = np.array([[1, 0, -1, 1], [0, 0, 1, -1]])
    current = np.array([[1, 1, 0, 1], [0, -1, 1, 1]])
    # labelled in both: (0,0) (0,1) (0,3) (1,0) (1,2): equal at 4 of them
    assert label_agreement(previous, current, -1) == pytest.approx(4 / 5)
    assert label_agreement(None, current, -1) is None
    assert label_agreement(np.full((1, 2), -1), np.ones((1, 2)), -1) is None
