"""`vad`: the command-line entry point. Subcommands load lazily so `vad --help` stays fast."""
from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import os
import sys
import traceback
from pathlib import Path

import click

from vad.errors import FAILED, VadError

# name -> "module:attribute" of a click command; loaded only when used or listed.
COMMANDS = {
    "extract": "vad.pipeline.cmd_extract:extract",
    "train": "vad.pipeline.cmd_train:train",
    "eval": "vad.pipeline.cmd_eval:evaluate",
    "cache": "vad.pipeline.cmd_cache:cache",
    "gt": "vad.pipeline.cmd_gt:gt",
    "weights": "vad.pipeline.cmd_weights:weights",
    "classify": "vad.pipeline.cmd_classify:classify",
    "score": "vad.pipeline.cmd_score:score",
    "export": "vad.pipeline.cmd_export:export",
    "demo": "vad.pipeline.cmd_demo:demo",
    "watch": "vad.pipeline.cmd_watch:watch",
    "info": "vad.pipeline.cmd_info:info",
}


COMMAND_LINE = "vad.command_line"  # key of click's shared context meta


class LazyGroup(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # The command line as typed, for the provenance that model files record.
        ctx.meta[COMMAND_LINE] = ["vad", *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        """The one place errors become exit codes: a VadError is its one line and its exit code;
        anything else is a bug, exit 1, with the traceback under -v. A closed stdout (`vad ... | head`)
        ends the command quietly, exit 0, as other Unix tools stop when nobody reads any more."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _drop_stdout()
            ctx.exit(0)
        except VadError as exc:
            click.echo(f"vad: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            verbose = logging.getLogger().isEnabledFor(logging.DEBUG)
            if verbose:
                traceback.print_exc()
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            click.echo(f"vad: internal error (a bug in vad, please report it): {type(exc).__name__}: {text}"
                       + ("" if verbose else "; rerun with -v for the traceback"), err=True)
            ctx.exit(FAILED)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands table of `vad --help`, from each command's docstring read without importing
        its module: a command's options are generated from configs that load torch."""
        rows = [(name, _short_help(COMMANDS[name], formatter.width - 6 - max(map(len, COMMANDS)))) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attribute = target.split(":")
        return getattr(importlib.import_module(module), attribute)


def _drop_stdout() -> None:
    """Point stdout at /dev/null: what Python still holds for the closed pipe is flushed there at exit instead of
    failing again ("Exception ignored ... BrokenPipeError")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a file (tests' captures): nothing is flushed to a pipe
        pass


def _short_help(target: str, width: int) -> str:
    """The first sentence of a command function's docstring, found in its module's source."""
    module, attribute = target.split(":")
    spec = importlib.util.find_spec(module)
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attribute:
            return click.utils.make_default_short_help(ast.get_docstring(node) or "", max(width, 45))
    return ""


class VersionMessage(str):
    """click's version line, then the data folder: the version says which code runs, the folder
    which state (weights, the default model) it uses.

    click.version_option takes its message as a format string fixed at import; click applies `%`
    only when --version is given, so $VAD_HOME is read then (and a `%` in the folder's path is
    never taken for a format)."""

    def __mod__(self, values):  # type: ignore[override]
        from vad.home import data_dir, data_dir_origin

        return f"{str.__mod__(self, values)}\ndata folder: {data_dir()} ({data_dir_origin()})"


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vad", message=VersionMessage("%(prog)s, version %(version)s"))
def main() -> None:
    """Weakly-supervised video anomaly detection: extract I3D features, train ARMS, score videos.

    \b
    Typical flow:
      vad extract videos/ --cache cache/            # I3D features per 16-frame snippet
      vad train --cache cache/ --labels train.csv   # ARMS multi-phase self-training
      vad eval --model runs/x/model.pt --cache cache/ --labels test.csv --gt gt.csv
      vad score clip.mp4 > scores.csv               # one video -> frame-level curve
    """
