"""Bounded fuzzing in CI (bench/fuzz.py runs the same targets longer): the CSV/GT/list importers,
the video front end and `vad watch`'s sources (random bytes, truncated and size-changing MPEG-TS
served on 127.0.0.1), fed random and mutated inputs, only ever succeed or raise their own error
type, and never hang; report pages show hostile names and provenance strings as text in
Chromium, and nothing in them runs."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from browser import chromium_missing, start_chromium
from fuzz_targets import (
    TABLE_KINDS,
    PageChecker,
    StreamServer,
    base_clip,
    mutate,
    page_inputs,
    table_inputs,
    table_target,
    video_inputs,
    video_target,
    watch_inputs,
    watch_scorer,
    watch_target,
)


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


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    if chromium_missing():
        pytest.fail(chromium_missing())  # .ci/run installs it: a missing browser is a broken setup, not a skip
    folder = tmp_path_factory.mktemp("pages")
    driver = start_chromium(folder / "profile")
    yield PageChecker(folder, driver)
    driver.quit()


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(case=page_inputs())
def test_report_pages_show_hostile_names_and_provenance_as_text(pages, case):
    assert pages(*case) == "shown"


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    server = StreamServer()
    yield server, watch_scorer(tmp_path_factory.mktemp("watch"))
    server.close()


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(case=watch_inputs())
def test_watch_sources_are_scored_or_refused_in_one_line(stream, case):
    assert watch_target(*stream, case) in ("scored", "empty", "refused")


def test_a_stream_that_changes_size_is_scored_whole(stream):
    assert watch_target(*stream, ("size_change", None, [], b"")) == "scored"
