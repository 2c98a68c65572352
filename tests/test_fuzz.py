"""Bounded fuzzing in CI (bench/fuzz.py runs the same targets longer): the CSV/GT/list importers
and the video front end, fed random and mutated inputs, only ever succeed or raise their own
error type, and never hang."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_targets import TABLE_KINDS, base_clip, mutate, table_inputs, table_target, video_inputs, video_target


@pytest.mark.parametrize("kind", TABLE_KINDS)
@settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(data=st.data())
def test_table_importers_never_crash(kind, data):
    assert table_target(kind, data.draw(table_inputs(kind))) in ("accepted", "refused")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(case=video_inputs())
def test_mutated_video_decodes_or_is_refused(case):
    flips, cut, dup, decoder = case
    assert video_target(mutate(base_clip(), flips, cut, dup), decoder) in ("decoded", "refused")


def test_unmutated_clip_decodes():
    assert video_target(base_clip(), "auto") == "decoded"
