"""Progress bars on stderr: redrawn live on a terminal, a line now and then in a log file."""
from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm

# Seconds between redraws when stderr is a file or a pipe (batch jobs, `2> log`): a bar that
# redraws ten times a second fills a job log with carriage returns.
LOG_INTERVAL_S = 30.0


def progress_bar(iterable: Iterable | None = None, **options) -> tqdm:
    """tqdm on stderr; when stderr is not a terminal, at most one redraw per LOG_INTERVAL_S."""
    stream = options.setdefault("file", sys.stderr)
    if not (hasattr(stream, "isatty") and stream.isatty()):
        options["mininterval"] = max(options.get("mininterval", 0.1), LOG_INTERVAL_S)
        options.setdefault("maxinterval", 2 * LOG_INTERVAL_S)
    return tqdm(iterable, **options)
