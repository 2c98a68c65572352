"""bench/ablation.py: the paired comparison that RESULTS.md reports."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import ablation  # noqa: E402


def test_paired_interval_equals_scipys_paired_t_test():
    a = [0.81, 0.85, 0.78, 0.90, 0.83]
    b = [0.80, 0.81, 0.79, 0.84, 0.80]
    d = ablation.paired_differences(a, b)
    interval = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert d["mean"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert (d["low"], d["high"]) == pytest.approx((interval.low, interval.high))
    assert d["wins"] == 4 and d["n"] == 5


def test_every_pair_and_variant_names_a_run():
    for better, reference, _ in ablation.PAIRS:
        assert better in ablation.RUNS and reference in ablation.RUNS
    assert {v.run for v in ablation.VARIANTS.values()} <= set(ablation.RUNS)
    assert set(ablation.DEFAULT_RUNS) <= set(ablation.RUNS)
