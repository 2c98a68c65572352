"""`vad classify VIDEO`: Kinetics-400 top classes per snippet and for the clip (default: Inception-I3D).

Small, but it shows at a glance that the pretrained weights are real: the snippets go through the
same decode/resize/centre-crop as `vad extract --backbone i3d-inception --crops 1`.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from vad.errors import VadError
from vad.hardware import DEVICE_HELP
from vad.pipeline.common import progress_disabled, verbosity

log = logging.getLogger("vad")

# The default: its Kinetics-400 weights install offline, and its head's class order is DeepMind's.
DEFAULT_BACKBONE = "i3d-inception"


def top_classes(logits, labels: list[str], k: int) -> list[dict]:
    """The k most probable classes of one logit vector: label, class index, softmax prob, logit."""
    import torch

    probs = torch.softmax(logits.double(), dim=-1)
    best = torch.topk(probs, k)
    return [
        {"label": labels[i], "index": int(i), "prob": round(float(probs[i]), 4), "logit": round(float(logits[i]), 4)}
        for i in best.indices.tolist()
    ]


def snippet_logits(video: Path, model, spec, device, decoder: str, *, batch_size: int, progress: bool):
    """[T, classes] logits of the centre crop of each 16-frame snippet, and the decode summary."""
    import torch

    from vad.extract.engine import Engine
    from vad.extract.snippets import SnippetPlan

    engine = Engine(model, spec, SnippetPlan(crops=1, decoder=decoder), device, batch_size, head=lambda model, x: model.logits(x))
    logits, summary = engine.video(video, progress=progress)
    return torch.from_numpy(logits[:, 0]), summary


@click.command()
@click.argument("video", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--top", "k", type=click.IntRange(1, 400), default=5, show_default=True, help="How many classes to show.")
@click.option("--clip-only", is_flag=True, help="Only the whole-clip classes (softmax of the snippet logits' mean).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout instead of text.")
@click.option("--backbone", default=DEFAULT_BACKBONE, show_default=True,
              help="A backbone whose entry names its classes (`vad weights list` shows the backbones).")
@click.option("--weights", type=click.Path(dir_okay=False), default=None, help="Weights file. Default: resolved as in `vad weights list`.")
@click.option("--decoder", type=click.Choice(["auto", "decord", "pyav"]), default="pyav", show_default=True,
              help="Video decoder; pyav decodes in decoder order as the reference pipeline.")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Snippets per forward pass.")
@verbosity
def classify(*, video: Path, k: int, clip_only: bool, as_json: bool, backbone: str, weights: str | None, decoder: str, device: str,
             batch_size: int) -> None:
    """Top Kinetics-400 classes of VIDEO per 16-frame snippet and for the whole clip.

    Uses the pretrained Inception-I3D (`vad weights fetch i3d-inception`) on the centre
    224x224 crop of each snippet. Exit codes: 0 done, 1 decoding failed, 2 bad input.
    """
    from vad.extract.backbones import backbone_names, get_backbone
    from vad.extract.engine import load_backbone, resolve_device

    if not video.is_file():
        raise VadError(f"{video}: no such file")
    spec = get_backbone(backbone)
    if spec.labels is None:
        with_labels = [name for name in backbone_names() if get_backbone(name).labels is not None]
        raise VadError(f"--backbone {backbone}: its entry names no classes; choose one of {', '.join(with_labels)}")
    torch_device = resolve_device(device)
    model, _ = load_backbone(spec, Path(weights) if weights else None, torch_device)
    logits, summary = snippet_logits(video, model, spec, torch_device, decoder, batch_size=batch_size, progress=not progress_disabled())
    labels = spec.labels()
    clip = top_classes(logits.mean(dim=0), labels, k)
    fps = summary.fps or None
    snippets = [
        {
            "index": t,
            "start_s": round(16 * t / fps, 3) if fps else None,
            "end_s": round(min(16 * (t + 1), summary.n_frames) / fps, 3) if fps else None,
            "top": top_classes(row, labels, k),
        }
        for t, row in enumerate(logits)
    ]
    if as_json:
        result = {"video": str(video), "fps": fps, "n_frames": summary.n_frames, "clip": clip}
        if not clip_only:
            result["snippets"] = snippets
        click.echo(json.dumps(result))
        return
    if not clip_only:
        for snippet in snippets:
            when = f" {snippet['start_s']:.2f}-{snippet['end_s']:.2f}s" if fps else ""
            click.echo(f"snippet {snippet['index']}{when}: " + ", ".join(f"{c['label']} {c['prob']:.3f}" for c in snippet["top"]))
    click.echo("clip: " + ", ".join(f"{c['label']} {c['prob']:.3f}" for c in clip))
