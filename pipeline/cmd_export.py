"""`vad export`: a model.pt -> ONNX or OpenVINO files that run without vad (pipeline/export.py)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from vad import settings
from vad.pipeline.common import progress_disabled, verbosity
from vad.pipeline.export import ExportConfig


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True, help="The export folder to write.")
@click.option("--calibrate", type=click.Path(path_type=Path), multiple=True, metavar="VIDEO_OR_CACHE",
              help="With --int8: a video, a folder of videos or a feature cache (its entries' source videos) to calibrate on; "
                   "repeat for more.")
@settings.options(ExportConfig)
@verbosity
def export(model, out, calibrate, **options):
    """Export a trained model to ONNX or OpenVINO, to run without vad.

    MODEL is a model.pt from `vad train` or `vad demo`. OUT receives the backbone, the
    detector and the score correction as files of --format, and vad-export.json: the
    preprocessing (snippets, resize, crops, normalisation), the networks' input and output
    names and shapes, the weights' sha256 and the model's provenance (docs/export.md). Every
    network is checked against PyTorch after export. Score with an export:
    `vad score clip.mp4 --model OUT` (its runtime is chosen from its format).

    \b
    vad export run/model.pt --out model-onnx
    vad export run/model.pt --out model-ov --format openvino
    vad export run/model.pt --out model-int8 --format openvino --int8 --calibrate footage/

    Needs the runtime's extra: pip install 'vad[onnx]' or 'vad[openvino]'.
    Exit codes: 0 exported, 1 a network failed to export, 2 bad input or a missing package.
    """
    from vad.pipeline.export import export_model

    config = settings.build(ExportConfig, {**settings.given(ExportConfig, options), "calibrate": tuple(calibrate)}, "vad export")
    exported = export_model(model, out, config, progress=not progress_disabled())
    backbone = exported.manifest["networks"]["backbone"]
    summary = {"out": str(exported.root), "format": exported.format, "backbone": exported.manifest["backbone"]["name"],
               "precision": backbone["precision"], "files": sorted(p.name for p in exported.root.iterdir())}
    if "deviation" in backbone:
        summary["int8_deviation"] = backbone["deviation"]
    click.echo(json.dumps(summary))
