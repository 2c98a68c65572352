"""People and vehicles: gaits, looks, the per-frame sprites, and the normal walkers of every clip."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vad.synth.config import ClipSpec, Color
from vad.synth.geometry import FAR_PATHS, Polyline, Scene


@dataclass(frozen=True)
class Gait:
    """How a figure moves its limbs; distances in body heights, angles in radians."""

    stride: float  # thigh swing amplitude
    knee: float  # knee bend at the back of the swing
    arm: float  # upper-arm swing amplitude
    elbow: float  # constant elbow bend
    lean: float  # forward lean of the torso
    cycle: float  # ground covered per gait cycle (two steps)
    bounce: float  # vertical bounce per step (runners leave the ground)


WALK = Gait(stride=0.4, knee=0.5, arm=0.3, elbow=0.25, lean=0.03, cycle=0.95, bounce=0.01)
RUN = Gait(stride=0.85, knee=1.6, arm=0.9, elbow=1.5, lean=0.3, cycle=2.3, bounce=0.06)
WALK_SPEED = 0.8  # body heights per second: 1.4 m/s for 1.7 m


@dataclass(frozen=True)
class Look:
    """Clothing and build of one person."""

    shirt: Color
    trousers: Color
    skin: Color
    hair: Color
    size: float  # height relative to the scene's 1.7 m person

    @staticmethod
    def random(rng: np.random.Generator) -> Look:
        def colour(lo: int, hi: int) -> Color:
            return tuple(int(c) for c in rng.integers(lo, hi, 3))

        skin = [(235, 200, 170), (200, 150, 110), (140, 95, 65), (95, 65, 45)][rng.integers(4)]
        hair = [(30, 25, 20), (90, 60, 30), (170, 140, 90), (120, 120, 120)][rng.integers(4)]
        return Look(colour(20, 240), colour(20, 140), skin, hair, float(rng.uniform(0.9, 1.1)))


@dataclass
class Pose:
    """One person in one frame. Arm angles, when given, override the gait's swing (fighting, throwing)."""

    x: float  # feet, image coordinates
    y: float
    h: float  # body height in pixels
    look: Look
    phase: float = 0.0  # gait phase, radians
    gait: Gait = WALK
    amp: float = 1.0  # fraction of the gait's swing (0: standing still)
    facing: int = 1  # +1 faces right, -1 left
    tilt: float = 0.0  # whole-body rotation about the feet, towards `facing` (pi/2: lying)
    lean: float = 0.0  # extra torso lean
    arms: tuple[float, float, float, float] | None = None  # (near upper, near elbow, far upper, far elbow)


@dataclass
class Vehicle:
    """A car seen from the side in one frame."""

    x: float  # centre of the wheelbase on the ground
    y: float
    h: float  # body height of a person standing there, for scale
    colour: Color
    facing: int
    wheel_angle: float


@dataclass
class Projectile:
    """A thrown object in one frame: ground point and height above it."""

    x: float
    y: float
    z: float  # pixels above the ground point
    h: float
    colour: Color


Sprite = Pose | Vehicle | Projectile


def _walk_track(scene: Scene, path: Polyline, s0: float, direction: int, speeds: np.ndarray, fps: int,
                *, gait: Gait, look: Look, phase0: float) -> list[Pose]:
    """Poses of a person moving along `path` from arc length s0, one per entry of `speeds` (body heights/s)."""
    poses, s, phase, facing = [], s0, phase0, direction
    for speed in speeds:
        x, y, ux, _ = path.at(s)
        h = scene.body_height(y) * look.size
        # Side-view limbs swing in x: foreshortened when walking towards or away from the camera.
        if abs(ux) > 0.25:
            facing = int(np.sign(ux * direction))
        amp = min(1.0, speed / WALK_SPEED) * max(0.45, abs(ux))
        poses.append(Pose(x, y, h, look, phase, gait, amp, facing))
        step = speed * h / fps
        s += direction * step
        phase += 2 * math.pi * step / (gait.cycle * h)
    return poses


def _speed_profile(rng: np.random.Generator, n: int, fps: int, speed: float, pause_prob: float) -> np.ndarray:
    """Constant speed, with an occasional pause of 0.6-2.4 s (people stop, look around, go on)."""
    speeds = np.full(n, speed)
    if rng.random() < pause_prob and n > fps:
        length = int(rng.uniform(0.6, 2.4) * fps)
        start = int(rng.integers(0, max(1, n - length)))
        ramp = min(5, length // 3)
        profile = np.zeros(length)
        profile[:ramp] = np.linspace(1, 0, ramp, endpoint=False)
        profile[length - ramp:] = np.linspace(0, 1, ramp)
        speeds[start:start + length] *= profile[: n - start]
    return speeds


def _path_span(scene: Scene, path: Polyline) -> tuple[float, float]:
    """Arc lengths where a standing person on this path is on screen."""
    on = [s for s in np.arange(-40.0, path.length + 40.0, 2.0)
          if scene.visible(*path.at(s)[:2], scene.body_height(path.at(s)[1]))]
    return (on[0], on[-1]) if on else (0.0, path.length)


def _pick_path(rng: np.random.Generator, scene: Scene, near: bool = False) -> Polyline:
    """A walkway by weight; `near` keeps those crossing the view at mid-depth, leaving out the ones
    that run along (or lead to) the buildings, where figures are small."""
    w = np.asarray(scene.path_weights)
    if near:
        w = w.copy()
        w[list(FAR_PATHS)] = 0.0
    return scene.paths[int(rng.choice(len(w), p=w / w.sum()))]


def _walker(rng: np.random.Generator, scene: Scene, spec: ClipSpec) -> list[Pose | None]:
    """A passer-by: enters, or is already on screen, somewhere along a walkway."""
    path = _pick_path(rng, scene)
    direction = 1 if rng.random() < 0.5 else -1
    speed = WALK_SPEED * rng.uniform(0.8, 1.2)
    lo, hi = _path_span(scene, path)
    start_s = rng.uniform(lo - 0.3 * (hi - lo), hi) if direction > 0 else rng.uniform(lo, hi + 0.3 * (hi - lo))
    speeds = _speed_profile(rng, spec.n_frames, spec.fps, speed, pause_prob=0.35)
    return list(_walk_track(scene, path, start_s, direction, speeds, spec.fps, gait=WALK, look=Look.random(rng), phase0=rng.uniform(0, 6.3)))


def _chatting_pair(rng: np.random.Generator, scene: Scene, spec: ClipSpec) -> list[list[Pose | None]]:
    """Two people standing face to face and gesturing slowly: close together like a fight, calm unlike one."""
    path = _pick_path(rng, scene)
    lo, hi = _path_span(scene, path)
    x, y, _, _ = path.at(rng.uniform(lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo)))
    tracks = []
    for side in (-1, 1):
        look = Look.random(rng)
        h = scene.body_height(y) * look.size
        freq, ph = rng.uniform(0.2, 0.5), rng.uniform(0, 6.3)
        track = []
        for t in range(spec.n_frames):
            g = math.sin(2 * math.pi * freq * t / spec.fps + ph)
            arms = (0.15 + 0.35 * max(0.0, g), 0.9 + 0.4 * g, 0.05, 0.3)
            track.append(Pose(x + side * 0.28 * h, y + 1.0, h, look, 0.0, WALK, 0.0, -side, arms=arms))
        tracks.append(track)
    return tracks
