"""vad: weakly-supervised video anomaly detection, from raw video to frame-level anomaly curves.

    import vad

    vad.extract_features("videos/", "cache/", backbone="i3d-inception", crops=1)   # I3D features per 16-frame snippet
    run = vad.train("cache/", "labels.csv", out="run/")                    # ARMS self-training
    curve = vad.load_scorer(run.model).score("clip.mp4")                   # one score per decoded frame
    curve.frame_scores, curve.fps, curve.intervals(0.5), curve.provenance

The functions live in vad.pipeline.api (see there for every argument); importing vad loads
none of torch, the backbones or the trainer until one of them is called. The training run
itself is vad.models.Trainer. `vad.extract` is the extraction package (vad.extract.cache,
vad.extract.engine...); calling it, the spelling of version 0.1, still runs extraction with a
DeprecationWarning.

Layers, bottom to top; a module imports only from its own layer or those below:
  vad.errors, vad.files, vad.claims, vad.registry, vad.progress, vad.hardware,
  vad.settings, vad.tables, vad.home                              the neutral bottom
  vad.weights                                                     weights files: resolve, verify, fetch
  vad.synth                                                       generated footage (fixtures, the demo)
  vad.extract (vad.extract.backbones inside)                      video -> snippets -> features
  vad.models                                                      detector, losses, phases, trainer
  vad.pipeline                                                    flows, the API, the CLI
"""
from __future__ import annotations

import sys
import types
import warnings

from vad import extract  # noqa: F401  (the extraction package; made callable below)


class _CallablePackage(types.ModuleType):
    """Version 0.1 called the extraction package as a function; that keeps working for one
    release, with a DeprecationWarning, and `vad.extract_features` is the function."""

    def __call__(self, videos, cache, **config):
        warnings.warn("vad.extract(...) is deprecated and will be removed in the next release; call vad.extract_features(...)",
                      DeprecationWarning, stacklevel=2)
        return extract_features(videos, cache, **config)


sys.modules["vad.extract"].__class__ = _CallablePackage


def extract_features(videos, cache, **config):
    """Extract features of `videos` into the feature cache `cache`; returns the ExtractReport.
    See vad.pipeline.api.extract_features."""
    from vad.pipeline.api import extract_features as run

    return run(videos, cache, **config)


def train(cache, labels, **config):
    """Train the ARMS detector on cached features; returns a Run. See vad.pipeline.api.train."""
    from vad.pipeline.api import train as run

    return run(cache, labels, **config)


def evaluate(model, cache, labels, gt, **config) -> dict:
    """Frame-level metrics of a model on cached test videos. See vad.pipeline.api.evaluate."""
    from vad.pipeline.api import evaluate as run

    return run(model, cache, labels, gt, **config)


def load_scorer(model=None, **config):
    """A Scorer of raw videos (model None: the default model). See vad.pipeline.api.load_scorer."""
    from vad.pipeline.api import load_scorer as load

    return load(model, **config)


def export(model, out, **config):
    """Export a model.pt to ONNX or OpenVINO (an int8 backbone too). See vad.pipeline.api.export."""
    from vad.pipeline.api import export as run

    return run(model, out, **config)


def watch(source, model=None, **config) -> dict:
    """Score a live stream, camera or file causally, snippet by snippet. See vad.pipeline.api.watch."""
    from vad.pipeline.api import watch as run

    return run(source, model, **config)


__all__ = ["evaluate", "extract_features", "load_scorer", "train", "watch"]
