"""The anomaly kinds: each builder stages one event (its actors and frame interval) and registers in ANOMALIES.

An event's ground truth is the frames in which its abnormal motion is on screen: the span
`[start, end)` (end exclusive) over which the runner or vehicle is visible, the fight lasts, the
person falls, lies and gets up, or the thrower winds up until the last object lands.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vad.synth.actors import RUN, WALK, WALK_SPEED, Look, Pose, Projectile, Sprite, Vehicle, _path_span, _pick_path, _walk_track
from vad.synth.config import ClipSpec
from vad.synth.geometry import Polyline, Scene
from vad.synth.kinds import register_anomaly


@dataclass
class Event:
    """An anomaly's actors and its frame interval [start, end) in clip frames."""

    tracks: list[list[Sprite | None]]
    start: int
    end: int


def _event_start(rng: np.random.Generator, n_frames: int, duration: int) -> int:
    """A start leaving at least 10% of the clip normal before it, and after it when the event fits."""
    lo = max(1, int(0.1 * n_frames))
    hi = max(lo, n_frames - duration - int(0.1 * n_frames))
    return int(rng.integers(lo, hi + 1))


def _fit(durations: list[int], budget: int) -> list[int]:
    """Shrink an event's phases proportionally so that they fit a short clip (at least 2 frames each)."""
    total = sum(durations)
    if total <= budget:
        return durations
    return [max(2, int(d * budget / total)) for d in durations]


def _visible_span(scene: Scene, track: list[Sprite | None]) -> tuple[int, int] | None:
    frames = [t for t, p in enumerate(track) if p is not None and scene.visible(p.x, p.y, p.h, 1.3 if isinstance(p, Vehicle) else 0.35)]
    return (frames[0], frames[-1] + 1) if frames else None


def _meeting_point(rng: np.random.Generator, scene: Scene) -> tuple[Polyline, float]:
    """A point on a walkway in the centre of the frame, where a centre crop still sees it, and where
    the walkway runs across the view, so that the side-view figures face along it."""
    W = scene.config.width
    for _ in range(100):
        path = _pick_path(rng, scene, near=True)
        s = rng.uniform(0, path.length)
        x, y, ux, _ = path.at(s)
        if 0.3 * W < x < 0.7 * W and y > scene.horizon + 0.2 * (scene.config.height - scene.horizon) and abs(ux) > 0.7:
            return path, s
    path = scene.paths[0]
    return path, min(np.arange(0, path.length, 2.0), key=lambda s: abs(path.at(s)[0] - W / 2))


def _approach(rng: np.random.Generator, scene: Scene, spec: ClipSpec, path: Polyline, s_meet: float, direction: int,
              *, frames: int, look: Look) -> list[Pose]:
    """Walk along `path` so as to reach s_meet after `frames` frames (integrated backwards, then reversed)."""
    speeds = np.full(frames, WALK_SPEED * rng.uniform(0.9, 1.1))
    back = _walk_track(scene, path, s_meet, -direction, speeds, spec.fps, gait=WALK, look=look, phase0=rng.uniform(0, 6.3))
    poses = back[::-1]
    for p in poses:
        p.facing = -p.facing
    return poses


@register_anomaly("running")
def _running(rng: np.random.Generator, scene: Scene, spec: ClipSpec) -> Event:
    """Someone sprinting along a walkway: 4x walking speed, long strides, pumping arms, leaning forward."""
    path = _pick_path(rng, scene, near=True)
    direction = 1 if rng.random() < 0.5 else -1
    lo, hi = _path_span(scene, path)
    start_s = lo - 5 if direction > 0 else hi + 5
    speeds = np.full(spec.n_frames, rng.uniform(3.0, 3.8))
    track = _walk_track(scene, path, start_s, direction, speeds, spec.fps, gait=RUN, look=Look.random(rng), phase0=0.0)
    span = _visible_span(scene, track) or (0, spec.n_frames)
    start = _event_start(rng, spec.n_frames, span[1] - span[0])
    shift = start - span[0]
    shifted: list[Sprite | None] = [None] * spec.n_frames
    for t, pose in enumerate(track):
        if 0 <= t + shift < spec.n_frames:
            shifted[t + shift] = pose
    return Event([shifted], start, min(spec.n_frames, span[1] + shift))


@register_anomaly("vehicle")
def _vehicle(rng: np.random.Generator, scene: Scene, spec: ClipSpec) -> Event:
    """A car driving across the pedestrian area, over the walkways, at 25-40 km/h."""
    W, H = scene.config.width, scene.config.height
    y = scene.horizon + rng.uniform(0.35, 0.85) * (H - scene.horizon)
    h = scene.body_height(y)
    facing = 1 if rng.random() < 0.5 else -1
    step = rng.uniform(4.0, 6.5) * h / spec.fps
    half = 1.4 * h
    duration = int(math.ceil((W + 2 * half) / step))
    start = _event_start(rng, spec.n_frames, duration)
    colour = tuple(int(c) for c in rng.integers(30, 230, 3))
    track: list[Sprite | None] = [None] * spec.n_frames
    for t in range(start, min(spec.n_frames, start + duration)):
        travelled = (t - start) * step
        x = -half + travelled if facing > 0 else W + half - travelled
        track[t] = Vehicle(x, y, h, colour, facing, travelled / (0.14 * h))
    return Event([track], start, min(spec.n_frames, start + duration))


@register_anomaly("fight")
def _fight(rng: np.random.Generator, scene: Scene, spec: ClipSpec) -> Event:
    """Two people meet, then punch, shove and grapple for 2-4 s, then walk off their own ways."""
    path, s_meet = _meeting_point(rng, scene)
    n = spec.n_frames
    fight_len = _fit([int(rng.uniform(2.0, 4.0) * spec.fps)], int(0.7 * n))[0]
    start = _event_start(rng, n, fight_len)
    end = start + fight_len
    tracks: list[list[Sprite | None]] = []
    for side in (-1, 1):
        look = Look.random(rng)
        # side -1 arrives from lower arc lengths walking forward, side +1 from higher ones walking back.
        s_stand = s_meet + side * 0.3 * scene.body_height(path.at(s_meet)[1])
        x, y, ux, _ = path.at(s_stand)
        h = scene.body_height(y) * look.size
        facing = -side * (1 if ux > 0 else -1)
        track: list[Sprite | None] = list(_approach(rng, scene, spec, path, s_stand, -side, frames=start, look=look))
        f1, f2, f3 = rng.uniform(1.5, 2.5), rng.uniform(2.5, 4.0), rng.uniform(0.7, 1.2)
        p1, p2 = rng.uniform(0, 6.3, 2)
        for t in range(fight_len):
            s = t / spec.fps
            punch = 0.5 + 0.5 * math.sin(2 * math.pi * f2 * s + p2)
            lunge = 0.15 * math.sin(2 * math.pi * f1 * s + p1) + 0.08 * math.sin(2 * math.pi * f3 * s)
            arms = (-0.2 + 1.9 * punch, 1.6 * (1 - punch), 1.7 - 1.9 * punch, 1.6 * punch)
            track.append(Pose(x + facing * lunge * h, y + 0.08 * h * math.sin(2 * math.pi * f1 * s), h, look,
                              phase=2 * math.pi * f2 * s, gait=WALK, amp=0.8, facing=facing,
                              tilt=0.12 * math.sin(2 * math.pi * f3 * s + p1), lean=0.25 + 0.15 * punch, arms=arms))
        remaining = n - end
        if remaining > 0:
            speeds = np.full(remaining, WALK_SPEED * rng.uniform(1.0, 1.2))
            track.extend(_walk_track(scene, path, s_stand, side, speeds, spec.fps, gait=WALK, look=look, phase0=0.0))
        tracks.append(track[:n])
    return Event(tracks, start, end)


@register_anomaly("fall")
def _fall(rng: np.random.Generator, scene: Scene, spec: ClipSpec) -> Event:
    """A walker collapses forward (0.4 s), lies there moving a little, gets up slowly and walks on."""
    path, s_fall = _meeting_point(rng, scene)
    direction = 1 if rng.random() < 0.5 else -1
    n = spec.n_frames
    fall, lie, rise = _fit([int(0.4 * spec.fps), int(rng.uniform(1.2, 3.0) * spec.fps), int(1.0 * spec.fps)], int(0.7 * n))
    start = _event_start(rng, n, fall + lie + rise)
    look = Look.random(rng)
    track: list[Sprite | None] = list(_approach(rng, scene, spec, path, s_fall, direction, frames=start, look=look))
    x, y, ux, _ = path.at(s_fall)
    facing = int(np.sign(ux * direction)) or 1
    h = scene.body_height(y) * look.size
    down = math.pi / 2 - 0.12
    for t in range(fall + lie + rise):
        if t < fall:
            tilt = down * ((t + 1) / fall) ** 2  # accelerates like a toppling body
            arms = (1.2 * t / fall, 0.3, 1.0 * t / fall, 0.3)
        elif t < fall + lie:
            wiggle = math.sin(2 * math.pi * 0.8 * (t - fall) / spec.fps)
            tilt, arms = down, (1.4 + 0.3 * wiggle, 0.5, 1.2 - 0.3 * wiggle, 0.8)
        else:
            u = (t - fall - lie + 1) / rise
            tilt, arms = down * (1 - u * u * (3 - 2 * u)), (0.6 * (1 - u), 1.2 * (1 - u), 0.3, 0.3)
        slide = 0.3 * h * min(1.0, t / max(1, fall))
        track.append(Pose(x + facing * slide, y, h, look, 0.0, WALK, 0.0, facing, tilt=tilt, arms=arms))
    if n > len(track):
        speeds = np.full(n - len(track), WALK_SPEED * 0.7)
        s_after = s_fall + direction * 0.3 * h
        track.extend(_walk_track(scene, path, s_after, direction, speeds, spec.fps, gait=WALK, look=look, phase0=0.0))
    return Event([track[:n]], start, min(n, start + fall + lie + rise))


def _projectile(rng: np.random.Generator, n: int, release: int, x: float, y: float, h: float, *, facing: int,
                flight: int) -> tuple[list[Sprite | None], int]:
    """An object leaving the hand at `release`: a parabola peaking ~0.9 body heights above the hand that
    lands after about `flight` frames, bounces once and rests. Returns the track and the frame it rests."""
    apex, z = 0.9 * h, 0.85 * h
    g = ((math.sqrt(2 * apex) + math.sqrt(2 * (apex + z))) / flight) ** 2
    vz = math.sqrt(2 * g * apex)
    vx, vy = facing * rng.uniform(2.0, 3.75) * h / flight, rng.uniform(-0.03, 0.03) * h  # lands 2-3.75 body heights away
    colour = [(230, 60, 40), (250, 245, 235), (245, 205, 40), (60, 120, 230)][rng.integers(4)]
    track: list[Sprite | None] = [None] * n
    px, py, bounced, rest = x + facing * 0.2 * h, y, False, n
    for f in range(release, n):
        track[f] = Projectile(px, py, z, h, colour)
        if rest < n:
            continue
        px, py, z, vz = px + vx, py + vy, z + vz, vz - g
        if z <= 0:
            z = 0.0
            if bounced:
                rest = f + 1
            vz, vx, vy, bounced = 0.3 * abs(vz), 0.5 * vx, 0.5 * vy, True
    return track, rest


@register_anomaly("throw")
def _throw(rng: np.random.Generator, scene: Scene, spec: ClipSpec) -> Event:
    """Someone stops and hurls 1-3 objects overarm; the event lasts until the last one comes to rest."""
    path, s_stop = _meeting_point(rng, scene)
    direction = 1 if rng.random() < 0.5 else -1
    n = spec.n_frames
    wind, swing, follow, gap, flight = _fit(
        [int(0.35 * spec.fps), max(2, int(0.15 * spec.fps)), int(0.25 * spec.fps), int(0.5 * spec.fps), int(rng.uniform(0.8, 1.1) * spec.fps)],
        int(0.6 * n))
    n_throws = int(rng.integers(1, 4)) if n >= 4 * spec.fps else 1
    throw_len = wind + swing + follow + gap
    start = _event_start(rng, n, n_throws * throw_len + flight // 2)
    look = Look.random(rng)
    thrower: list[Sprite | None] = list(_approach(rng, scene, spec, path, s_stop, direction, frames=start, look=look))
    x, y, ux, _ = path.at(s_stop)
    facing = int(np.sign(ux * direction)) or 1
    h = scene.body_height(y) * look.size
    tracks: list[list[Sprite | None]] = []
    end = start
    for k in range(n_throws):
        release = start + k * throw_len + wind + swing
        for i in range(wind):  # arm drawn back over the shoulder
            thrower.append(Pose(x, y, h, look, facing=facing, amp=0.0, lean=-0.15 * i / wind, arms=(-2.4 * (i + 1) / wind, 1.2, 0.5, 0.3)))
        for i in range(swing):  # fast overarm swing
            u = (i + 1) / swing
            thrower.append(Pose(x, y, h, look, facing=facing, amp=0.0, lean=0.3 * u, arms=(-2.4 + 4.0 * u, 1.2 * (1 - u), 0.5 - 0.8 * u, 0.3)))
        for i in range(follow + gap):
            back = max(0.0, 1 - i / follow)
            thrower.append(Pose(x, y, h, look, facing=facing, amp=0.0, lean=0.3 * back, arms=(1.6 * back, 0.2, 0.2, 0.3)))
        track, rest = _projectile(rng, n, release, x, y + 1, h, facing=facing, flight=flight)  # +1: drawn in front of the thrower
        tracks.append(track)
        end = max(end, rest, release + follow)
    if n > len(thrower):
        speeds = np.full(n - len(thrower), WALK_SPEED)
        thrower.extend(_walk_track(scene, path, s_stop, direction, speeds, spec.fps, gait=WALK, look=look, phase0=0.0))
    return Event([thrower[:n]] + tracks, start, min(n, end))
