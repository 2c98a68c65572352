"""Planning a clip: who is where in every frame, and the ground truth; everything but the pixels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vad.synth.actors import Sprite, _chatting_pair, _walker
from vad.synth.config import ClipSpec, Interval
from vad.synth.geometry import Scene
from vad.synth.kinds import ANOMALIES
from vad.synth.scene import build_scene


@dataclass
class ClipPlan:
    """Who is where in every frame, and the ground truth: everything but the pixels."""

    spec: ClipSpec
    scene: Scene
    tracks: list[list[Sprite | None]]  # one entry per frame; None where the actor is absent
    gt: list[Interval]  # abnormal frame intervals [start, end), empty for a normal clip


def plan_clip(spec: ClipSpec) -> ClipPlan:
    """Place the walkers and the event. Separate random streams, so the walkers of a clip do not
    change when only its anomaly does."""
    scene = build_scene(spec.scene)
    walk_rng, event_rng = (np.random.default_rng([spec.scene.scene_id, spec.seed, stream]) for stream in (1, 2))
    tracks: list[list[Sprite | None]] = []
    gt: list[Interval] = []
    if spec.anomaly == "none":
        n_walkers = int(walk_rng.integers(2, max(2, spec.max_walkers) + 1))
        if walk_rng.random() < 0.35:
            tracks.extend(_chatting_pair(walk_rng, scene, spec))
    else:
        n_walkers = int(walk_rng.integers(1, spec.max_walkers + 1))
        event = ANOMALIES[spec.anomaly](event_rng, scene, spec)
        if not 0 <= event.start < event.end <= spec.n_frames:
            raise RuntimeError(f"{spec.anomaly}: event interval {event.start}-{event.end} outside 0-{spec.n_frames}")
        tracks.extend(event.tracks)
        gt.append((event.start, event.end))
    tracks.extend(_walker(walk_rng, scene, spec) for _ in range(n_walkers))
    return ClipPlan(spec, scene, tracks, gt)
