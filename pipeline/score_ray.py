"""`vad score --out DIR --backend ray`: the scoring of an archive spread over a Ray cluster.

The actors and the dispatch are `vad extract --backend ray`'s (extract/ray_backend.py): one
actor per GPU (or per `--ray-cpus` CPUs) loads the backbone and the detector once
(Scorer.from_config) and scores one video per task; a free actor gets the next video. An actor
writes nothing: it returns the Curve to the driver, which writes the outputs, the plots and
pages, the per-video record and the archive summary with the local path's own function
(cmd_score), so the two backends cannot drift. A worker killed mid-video has written nothing;
Ray restarts it and re-runs the video (a video that kills its worker every time fails alone).

The videos, the model and the weights must be reachable under the same paths from every node.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from vad import weights as weights_store
from vad.extract.engine import Failed, first_line
from vad.extract.inputs import VideoItem
from vad.extract.ray_backend import RayOptions, dispatch, import_ray, ray_session, start_actors
from vad.pipeline.score import Curve, ScoreConfig, Scorer, computed_by


class ScoreWorker:
    """Holds a Scorer; `run(item)` scores one video and returns its Curve, or Failed with one line (a Ray actor body)."""

    def __init__(self, config: ScoreConfig, threads: int):
        torch.set_num_threads(max(1, threads))
        self.scorer = Scorer.from_config(config)

    def pid(self) -> int:
        return os.getpid()

    def run(self, item: VideoItem) -> Curve | Failed:
        """The Curve, carrying this actor's precision and arithmetic (its device, threads) for the JSON output."""
        try:
            return replace(self.scorer.score(item.path), computed=computed_by(self.scorer))
        except Exception as exc:  # one broken video must not stop the run
            return Failed(0, first_line(exc))


def worker_config(scorer: Scorer) -> ScoreConfig:
    """The driver's settings with absolute model and weights paths (an actor's working directory is Ray's)."""
    config = scorer.config
    weights = weights_store.resolve(scorer.spec.weights, config.weights)
    return replace(config, model=Path(config.model).resolve(), weights=Path(weights).resolve())


def score_ray(items: list[VideoItem], scorer: Scorer, options: RayOptions, *, on_curve: Callable[[VideoItem, Curve], None],
              on_failure: Callable[[VideoItem, str], None], progress: bool = True,
              on_result: Callable[[str, list], None] | None = None) -> None:
    """Score every item on the actors; on the driver, `on_curve(item, curve)` (curve.path is item.path) or
    `on_failure(item, one line)` as each video comes back. `on_result(video_id, actors)` after each (tests kill actors there)."""
    ray = import_ray()
    if not items:
        return
    config = worker_config(scorer)

    def outcome(item: VideoItem, result) -> None:
        if isinstance(result, Curve):
            on_curve(item, replace(result, path=item.path))
        else:
            on_failure(item, result.error)

    with ray_session(ray, options):
        actors = start_actors(ray, options, ScoreWorker, len(items), config, options.cpus_per_actor)
        sent = [replace(item, path=Path(item.path).resolve()) for item in items]
        by_id = {item.video_id: item for item in items}
        dispatch(ray, actors, sent, lambda item, result: outcome(by_id[item.video_id], result), progress=progress, on_result=on_result)
