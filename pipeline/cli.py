"""`vad`: the command-line entry point. Subcommands load lazily so `vad --help` stays fast."""
from __future__ import annotations

import importlib

import click

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
    "demo": "vad.pipeline.cmd_demo:demo",
}


COMMAND_LINE = "vad.command_line"  # key of click's shared context meta


class LazyGroup(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # The command line as typed, for the provenance that model files record.
        ctx.meta[COMMAND_LINE] = ["vad", *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attribute = target.split(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vad")
def main() -> None:
    """Weakly-supervised video anomaly detection: extract I3D features, train ARMS, score videos.

    \b
    Typical flow:
      vad extract videos/ --cache cache/            # I3D features per 16-frame snippet
      vad train --cache cache/ --labels train.csv   # ARMS multi-phase self-training
      vad eval --model runs/x/model.pt --cache cache/ --labels test.csv --gt gt.csv
      vad score clip.mp4 > scores.csv               # one video -> frame-level curve
    """
