"""Longer fuzzing of vad's front ends than CI runs (tests/test_fuzz.py, same targets).

Prints one JSON object: per target, inputs tried, outcomes, and every distinct failure (an
exception other than the target's own error type, or a hang) with one input that caused it.

    python bench/fuzz.py [--tables N] [--videos N] [--pages N] [--streams N] [--seed S]

pages: report pages with hostile names and provenance strings, checked in headless Chromium;
streams: `vad watch` on random bytes, truncated, mutated and size-changing MPEG-TS served over
HTTP on 127.0.0.1.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from browser import chromium_missing, start_chromium  # noqa: E402
from fuzz_targets import (  # noqa: E402
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


def run(name: str, strategy, call, n: int, rng_seed: int) -> dict:
    stats = {"tried": 0, "outcomes": {}, "failures": {}}
    started = time.perf_counter()

    @seed(rng_seed)
    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def target(case):
        stats["tried"] += 1
        try:
            outcome = call(case) or "ok"
        except Exception as exc:  # collected, not raised: one run reports every kind of failure
            key = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            stats["failures"].setdefault(key, repr(case)[:300])
            outcome = "failure"
        stats["outcomes"][outcome] = stats["outcomes"].get(outcome, 0) + 1

    target()
    stats["seconds"] = round(time.perf_counter() - started, 2)
    return {name: stats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=2000, help="inputs per table importer")
    parser.add_argument("--videos", type=int, default=300, help="mutated video files")
    parser.add_argument("--pages", type=int, default=200, help="report pages checked in Chromium (0: none)")
    parser.add_argument("--streams", type=int, default=100, help="sources given to vad watch (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    report = {}
    for kind in TABLE_KINDS:
        report.update(run(kind, table_inputs(kind), lambda data, kind=kind: table_target(kind, data), args.tables, args.seed))
    clip = base_clip()
    report.update(run("video", video_inputs(), lambda case: video_target(mutate(clip, *case[:3]), case[3]), args.videos, args.seed))
    work = Path(tempfile.mkdtemp(prefix="vad-fuzz-"))
    if args.pages:
        if chromium_missing():
            sys.exit(chromium_missing())
        driver = start_chromium(work / "profile")
        try:
            checker = PageChecker(work, driver)
            report.update(run("page", page_inputs(), lambda case: checker(*case), args.pages, args.seed))
        finally:
            driver.quit()
    if args.streams:
        server, scorer = StreamServer(), watch_scorer(work)
        try:
            report.update(run("watch", watch_inputs(), lambda case: watch_target(server, scorer, case), args.streams, args.seed))
        finally:
            server.close()
    shutil.rmtree(work, ignore_errors=True)
    total = {"tried": sum(r["tried"] for r in report.values()), "failures": sum(len(r["failures"]) for r in report.values())}
    print(json.dumps({"total": total, "targets": report}, indent=1))


if __name__ == "__main__":
    main()
