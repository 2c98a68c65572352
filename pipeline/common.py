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


def scoring_network(command: Callable) -> Callable:
    """--precision and --exact of the commands that score (`score`, `watch`): their curves need
    not match released features bit for bit, so on CUDA the backbone runs in fp16 (engine.scoring_precision)."""
    command = click.option(
        "--exact", is_flag=True,
        help="Run the backbone exactly as its architecture is written, not its inference form (BatchNorm folded, "
             "2-D convolutions of frames: the same features within 1e-5 of max|ref|, faster).")(command)
    return click.option(
        "--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
        help="The backbone's precision. auto: fp16 on CUDA (its rounding, run on a CPU, kept frame scores within 0.003 of "
             "fp32 on the 13 clips measured), fp32 on every CPU, so every CPU gives the same curve up to float rounding. "
             "bf16 is about 1.8x faster on CPUs with AMX but moves frame scores by up to 0.053 against fp32 where they "
             "are mid-range, enough to flip frames across 0.5; without AMX or AVX512-BF16 it is emulated and slower than fp32.")(command)


def progress_disabled() -> bool:
    """Progress bars go to stderr, and not at all with --quiet."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get("vad.quiet"))


def fmt_optional(value: float | None, digits: int = 4) -> str:
    """A metric that may be undefined (None: e.g. AUC without both classes) as text."""
    return "n/a" if value is None else f"{value:.{digits}f}"
