"""What every subcommand shares: verbosity flags, logging to stderr, progress switches, number formats."""
from __future__ import annotations

import contextlib
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


def ray_options(local: str, shared: str) -> Callable[[Callable], Callable]:
    """--backend, --ray-address, --ray-actors, --ray-cpus, as `vad extract` and `vad score` take them (RayOptions: ray_settings).
    `local` says what the local backend is, `shared` what must be on a shared file system."""

    def decorate(command: Callable) -> Callable:
        for option in reversed([
            click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                         help=f"local: {local}. ray: one actor per GPU (or per --ray-cpus CPUs) on a Ray cluster, one task per video, "
                              f"retried when a worker dies; needs `pip install 'vad[ray]'` and {shared} on a shared file system."),
            click.option("--ray-address", default=None, metavar="ADDR",
                         help="Ray cluster to join (e.g. auto, or ray://head:10001). Default: start a local Ray instance on this machine."),
            click.option("--ray-actors", type=click.IntRange(min=1), default=None,
                         help="Number of Ray actors. Default: one per GPU in the cluster, else one per --ray-cpus CPUs."),
            click.option("--ray-cpus", type=click.IntRange(min=1), default=1, show_default=True,
                         help="CPUs each Ray actor reserves (its torch threads)."),
        ]):
            command = option(command)
        return command

    return decorate


def ray_settings(backend: str, ray_address: str | None, ray_actors: int | None, ray_cpus: int):
    """The RayOptions of --backend ray (None for local); the --ray-* options without it are refused."""
    from vad.errors import VadError

    if backend != "ray":
        if ray_address or ray_actors:
            raise VadError("--ray-address/--ray-actors need --backend ray")
        return None
    from vad.extract.ray_backend import RayOptions

    return RayOptions(address=ray_address, actors=ray_actors, cpus_per_actor=ray_cpus)


@contextlib.contextmanager
def quiet_loggers(*names: str):
    """Other libraries' INFO lines (the exporter's optimisation passes, NNCF) kept off vad's stderr: only their warnings pass."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logging.WARNING, logger.level))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
