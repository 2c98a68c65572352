"""What every subcommand shares: verbosity flags, logging to stderr, progress switches, number formats."""
from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable

import click

log = logging.getLogger("vad")


def setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)


def verbosity(command: Callable) -> Callable:
    """Add -v/--verbose and -q/--quiet to a command and configure logging before it runs."""

    @click.option("-v", "--verbose", count=True, help="More detail on stderr.")
    @click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr; no progress bars.")
    @functools.wraps(command)
    def wrapper(*args, verbose: int, quiet: bool, **kwargs):
        setup_logging(verbose, quiet)
        click.get_current_context().meta["vad.quiet"] = quiet
        return command(*args, **kwargs)

    return wrapper


def progress_disabled() -> bool:
    """Progress bars go to stderr, and not at all with --quiet."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get("vad.quiet"))


def fmt_optional(value: float | None, digits: int = 4) -> str:
    """A metric that may be undefined (None: e.g. AUC without both classes) as text."""
    return "n/a" if value is None else f"{value:.{digits}f}"
