"""Synthetic surveillance footage: a fixed camera over a textured scene, walkers, and anomalies with frame GT.

A scene (`SceneConfig`) is a camera looking down on a ground plane: sky and buildings above the
horizon, walkways, trees, benches and lamp posts below, all laid out from `scene_id` and painted
once. A clip (`ClipSpec`) puts people walking along the walkways at normal speed (some pause,
some stand and talk) and, in an abnormal clip, one event from `ANOMALIES`: running, fighting, a
vehicle crossing the walkways, a fall, objects thrown. Everything follows from the seeds, so
the same spec always renders the same frames.

Perspective is the one piece of geometry: a person standing at image row y is `Scene.body_height(y)`
pixels tall, and all speeds are in body heights per second, so far people move fewer pixels.
Walking is ~0.8 body heights/s (1.4 m/s); running 3-3.8; the vehicle 4-6.5.

An event's ground truth is the frames in which its abnormal motion is on screen: the span
`[start, end)` (end exclusive) over which the runner or vehicle is visible, the fight lasts, the
person falls, lies and gets up, or the thrower winds up until the last object lands.
"""
from __future__ import annotations

import csv
import functools
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from vad.registry import Registry

log = logging.getLogger("vad")

Color = tuple[int, int, int]
Interval = tuple[int, int]


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SceneConfig:
    """One fixed camera. Frozen and hashable: the painted background is cached per config."""

    scene_id: int = 0  # layout seed: horizon, walkways, buildings, trees and palette follow from it
    width: int = 320  # frame width in pixels (even, for yuv420p)
    height: int = 240  # frame height in pixels (even)
    noise_sigma: float = 2.0  # sensor noise standard deviation, grey levels
    flicker: float = 0.015  # relative amplitude of the lighting flicker (mains hum, auto exposure)
    timestamp: bool = True  # burn in a CCTV clock, as most surveillance footage has

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 24 or self.width % 2 or self.height % 2:
            raise ValueError(f"scene size must be even and at least 32x24, got {self.width}x{self.height}")


@dataclass(frozen=True)
class ClipSpec:
    """One clip of one scene. `anomaly="none"` is a normal clip."""

    scene: SceneConfig = field(default_factory=SceneConfig)
    seed: int = 0  # every actor, pause, colour, noise frame and the event timing follow from it
    n_frames: int = 160  # clip length in frames
    fps: int = 25  # frame rate; speeds are per second, so motion per frame follows it
    anomaly: str = "none"  # "none" or a name in ANOMALIES
    max_walkers: int = 5  # background walkers are drawn in [1, max_walkers] (normal clips: at least 2)

    def __post_init__(self) -> None:
        if self.anomaly != "none" and self.anomaly not in ANOMALIES:
            raise ValueError(f"unknown anomaly {self.anomaly!r}; known: none, {', '.join(ANOMALIES)}")
        if self.n_frames < 16:
            raise ValueError(f"n_frames must be at least 16, got {self.n_frames}")
        if self.fps < 1 or self.max_walkers < 1:
            raise ValueError("fps and max_walkers must be positive")


# --------------------------------------------------------------------------- scene geometry


class Polyline:
    """A walkway centre line in image coordinates; positions are arc lengths, extrapolated past the ends."""

    def __init__(self, points: list[tuple[float, float]]):
        self.points = np.asarray(points, dtype=np.float64)
        seg = np.diff(self.points, axis=0)
        self.seg_len = np.hypot(seg[:, 0], seg[:, 1])
        self.unit = seg / self.seg_len[:, None]
        self.cum = np.concatenate([[0.0], np.cumsum(self.seg_len)])
        self.length = float(self.cum[-1])

    def at(self, s: float) -> tuple[float, float, float, float]:
        """(x, y, unit tangent x, unit tangent y) at arc length s."""
        i = int(np.clip(np.searchsorted(self.cum, s, side="right") - 1, 0, len(self.seg_len) - 1))
        ux, uy = self.unit[i]
        d = s - self.cum[i]
        return self.points[i, 0] + ux * d, self.points[i, 1] + uy * d, ux, uy


@dataclass
class Scene:
    """A painted background plus the geometry actors need."""

    config: SceneConfig
    background: Image.Image  # RGB, painted once
    horizon: float  # image row of the horizon / building line
    near_height: float  # body height in pixels of a person standing on the bottom row
    paths: list[Polyline]  # walkways, each running edge to edge (or bottom edge to a side edge)
    path_weights: list[float]  # how often walkers pick each walkway
    camera: int  # camera number in the clock overlay

    def body_height(self, y: float) -> float:
        """Pixels a 1.7 m person standing at row y spans: linear in depth, 30% of near at the horizon."""
        depth = (y - self.horizon) / (self.config.height - self.horizon)
        return self.near_height * (0.3 + 0.7 * float(np.clip(depth, 0.0, 1.2)))

    def visible(self, x: float, y: float, h: float, half_width: float = 0.35) -> bool:
        """True if a box of height h standing on (x, y) overlaps the frame."""
        w = half_width * h
        return x + w >= 0 and x - w < self.config.width and y >= 0 and y - h < self.config.height


FAR_PATHS = (1, 2)  # indices in Scene.paths of the walkway along the buildings and the one leading to it


@functools.lru_cache(maxsize=16)
def build_scene(config: SceneConfig) -> Scene:
    """Lay out and paint a scene; cached so every clip of a scene shares one background."""
    rng = np.random.default_rng([config.scene_id, 0x5CE])
    W, H = config.width, config.height
    horizon = H * rng.uniform(0.2, 0.34)
    near_height = H * rng.uniform(0.2, 0.26)
    ground_h = H - horizon

    def row(frac: float) -> float:
        return horizon + frac * ground_h

    far_y = row(rng.uniform(0.08, 0.16))
    cross_a, cross_m, cross_b = (row(rng.uniform(0.4, 0.75)) for _ in range(3))
    paths = [
        Polyline([(-0.15 * W, cross_a), (rng.uniform(0.3, 0.7) * W, cross_m), (1.15 * W, cross_b)]),
        Polyline([(-0.15 * W, far_y), (1.15 * W, far_y + rng.uniform(-0.04, 0.04) * ground_h)]),
    ]
    # A walkway coming from under the camera and turning onto the far one: walkers change size and direction.
    x_bottom, x_turn = rng.uniform(0.25, 0.75) * W, rng.uniform(0.3, 0.7) * W
    side = -0.15 * W if rng.random() < 0.5 else 1.15 * W
    paths.append(Polyline([(x_bottom, H + 0.3 * near_height), (x_turn, far_y + 0.02 * ground_h), (side, far_y)]))
    weights = [1.0, 0.6, 0.9]
    if rng.random() < 0.5:
        y0, y1 = row(rng.uniform(0.55, 0.95)), row(rng.uniform(0.2, 0.4))
        paths.append(Polyline([(-0.15 * W, y0), (1.15 * W, y1)] if rng.random() < 0.5 else [(1.15 * W, y0), (-0.15 * W, y1)]))
        weights.append(0.7)
    scene = Scene(config, Image.new("RGB", (W, H)), horizon, near_height, paths, weights, int(rng.integers(1, 17)))
    scene.background = _paint_background(scene, rng)
    return scene


# --------------------------------------------------------------------------- background painting

GROUNDS: list[Color] = [(92, 118, 64), (104, 124, 70), (150, 146, 136), (128, 124, 118), (142, 124, 96)]
PAVINGS: list[Color] = [(178, 172, 160), (160, 150, 136), (190, 186, 178), (140, 136, 130)]
FACADES: list[Color] = [(150, 90, 70), (170, 160, 140), (120, 120, 125), (190, 180, 160), (95, 105, 120), (160, 130, 100)]


def _smooth_noise(rng: np.random.Generator, W: int, H: int, cell: int) -> np.ndarray:
    """Value noise in [-1, 1]-ish at a scale of `cell` pixels: cheap ground texture."""
    coarse = rng.standard_normal((H // cell + 2, W // cell + 2)).astype(np.float32)
    img = Image.fromarray(coarse, mode="F").resize((W + 2 * cell, H + 2 * cell), Image.BICUBIC)
    return np.asarray(img)[cell:cell + H, cell:cell + W]


def _paint_background(scene: Scene, rng: np.random.Generator) -> Image.Image:
    W, H = scene.config.width, scene.config.height
    hz = int(round(scene.horizon))
    ys = np.arange(H, dtype=np.float32)[:, None, None]
    sky_top, sky_low = np.array(rng.choice([(120, 160, 205), (170, 180, 190), (200, 200, 205)])), np.array((215, 220, 225))
    t = np.clip(ys / max(hz, 1), 0, 1)
    img = np.broadcast_to(sky_top * (1 - t) + sky_low * t, (H, W, 3)).copy()

    ground = np.array(GROUNDS[rng.integers(len(GROUNDS))], dtype=np.float32)
    tex = 10 * _smooth_noise(rng, W, H, 16) + 5 * _smooth_noise(rng, W, H, 4) + 3 * rng.standard_normal((H, W)).astype(np.float32)
    img[hz:] = ground + tex[hz:, :, None] * np.array([1.0, 1.05, 0.9])
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil, "RGBA")

    _paint_buildings(draw, rng, W, hz, scene.near_height)
    paving = PAVINGS[rng.integers(len(PAVINGS))]
    for path in scene.paths:
        _paint_walkway(draw, scene, path, paving)
    _paint_props(draw, rng, scene)

    arr = np.asarray(pil.filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float32)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    r2 = ((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2
    white_balance = rng.uniform(0.92, 1.08, 3).astype(np.float32)
    arr = arr * (1 - 0.12 * r2)[:, :, None] * white_balance
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _paint_buildings(draw: ImageDraw.ImageDraw, rng: np.random.Generator, W: int, hz: int, near_height: float) -> None:
    x = -rng.uniform(0, 0.1) * W
    while x < W:
        bw = rng.uniform(0.15, 0.4) * W
        top = hz - rng.uniform(0.35, 1.0) * hz
        colour = tuple(int(c) for c in np.clip(np.array(FACADES[rng.integers(len(FACADES))]) + rng.integers(-12, 13, 3), 0, 255))
        draw.rectangle([x, top, x + bw, hz], fill=colour)
        draw.rectangle([x, top, x + bw, top + 2], fill=tuple(int(c * 0.6) for c in colour))
        win = max(2.0, 0.12 * near_height)
        lit = rng.random() < 0.3
        for wy in np.arange(top + 1.5 * win, hz - 2 * win, 2.2 * win):
            for wx in np.arange(x + win, x + bw - win, 2.0 * win):
                glass = (225, 215, 160) if lit and rng.random() < 0.4 else (70, 85, 100)
                draw.rectangle([wx, wy, wx + win, wy + 1.2 * win], fill=glass)
        x += bw + (rng.uniform(0.02, 0.1) * W if rng.random() < 0.4 else 0)
    draw.rectangle([0, hz - 2, W, hz + 1], fill=(90, 90, 92))


def _paint_walkway(draw: ImageDraw.ImageDraw, scene: Scene, path: Polyline, paving: Color) -> None:
    """A paved band 1.4 body heights wide (about 2.4 m), with joints every ~0.7 body heights."""
    left, right, joints = [], [], []
    s, next_joint = 0.0, 0.0
    while s <= path.length:
        x, y, ux, uy = path.at(s)
        half = 0.7 * scene.body_height(y)
        left.append((x - uy * half, y + ux * half))
        right.append((x + uy * half, y - ux * half))
        if s >= next_joint:
            joints.append((left[-1], right[-1]))
            next_joint = s + 0.7 * scene.body_height(y)
        s += 3.0
    draw.polygon(left + right[::-1], fill=paving, outline=tuple(int(c * 0.7) for c in paving))
    joint_colour = tuple(int(c * 0.85) for c in paving)
    for a, b in joints:
        draw.line([a, b], fill=joint_colour, width=1)


def _on_walkway(scene: Scene, x: float, y: float) -> bool:
    for path in scene.paths:
        pts = np.array([path.at(s)[:2] for s in np.arange(0, path.length, 4.0)])
        if np.min(np.hypot(pts[:, 0] - x, pts[:, 1] - y)) < 0.9 * scene.body_height(y):
            return True
    return False


def _paint_props(draw: ImageDraw.ImageDraw, rng: np.random.Generator, scene: Scene) -> None:
    """Trees, benches and lamp posts off the walkways, painted far to near so near ones overlap."""
    W, H = scene.config.width, scene.config.height
    props = []
    for kind, count in (("tree", rng.integers(2, 6)), ("bench", rng.integers(1, 4)), ("lamp", rng.integers(1, 4))):
        for _ in range(int(count)):
            for _attempt in range(20):
                x, y = rng.uniform(0, W), rng.uniform(scene.horizon + 0.05 * (H - scene.horizon), H)
                if not _on_walkway(scene, x, y):
                    props.append((y, x, kind))
                    break
    for y, x, kind in sorted(props):
        h = scene.body_height(y)
        draw.ellipse([x - 0.5 * h, y - 0.08 * h, x + 0.5 * h, y + 0.08 * h], fill=(0, 0, 0, 50))
        if kind == "tree":
            draw.rectangle([x - 0.07 * h, y - 1.3 * h, x + 0.07 * h, y], fill=(80, 60, 40))
            for _ in range(5):
                cx, cy, r = x + rng.uniform(-0.45, 0.45) * h, y - rng.uniform(1.3, 2.0) * h, rng.uniform(0.35, 0.6) * h
                g = int(rng.integers(70, 110))
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(int(g * 0.5), g, int(g * 0.4)))
        elif kind == "bench":
            draw.rectangle([x - 0.5 * h, y - 0.3 * h, x + 0.5 * h, y - 0.24 * h], fill=(120, 80, 50))
            draw.rectangle([x - 0.5 * h, y - 0.55 * h, x + 0.5 * h, y - 0.45 * h], fill=(110, 72, 45))
            for lx in (x - 0.42 * h, x + 0.38 * h):
                draw.rectangle([lx, y - 0.3 * h, lx + 0.04 * h, y], fill=(50, 50, 50))
        else:
            draw.rectangle([x - 0.02 * h, y - 2.2 * h, x + 0.02 * h, y], fill=(60, 62, 66))
            draw.ellipse([x - 0.1 * h, y - 2.3 * h, x + 0.1 * h, y - 2.15 * h], fill=(230, 230, 210))


# --------------------------------------------------------------------------- people and vehicles


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
    def random(rng: np.random.Generator) -> "Look":
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
                gait: Gait, look: Look, phase0: float) -> list[Pose]:
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
    return list(_walk_track(scene, path, start_s, direction, speeds, spec.fps, WALK, Look.random(rng), rng.uniform(0, 6.3)))


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


# --------------------------------------------------------------------------- anomalies


@dataclass
class Event:
    """An anomaly's actors and its frame interval [start, end) in clip frames."""

    tracks: list[list[Sprite | None]]
    start: int
    end: int


AnomalyBuilder = Callable[[np.random.Generator, Scene, ClipSpec], Event]
ANOMALIES: Registry[AnomalyBuilder] = Registry("anomaly")


def register_anomaly(name: str) -> Callable[[AnomalyBuilder], AnomalyBuilder]:
    return lambda builder: ANOMALIES.add(name, builder)


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
              frames: int, look: Look) -> list[Pose]:
    """Walk along `path` so as to reach s_meet after `frames` frames (integrated backwards, then reversed)."""
    speeds = np.full(frames, WALK_SPEED * rng.uniform(0.9, 1.1))
    back = _walk_track(scene, path, s_meet, -direction, speeds, spec.fps, WALK, look, rng.uniform(0, 6.3))
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
    track = _walk_track(scene, path, start_s, direction, speeds, spec.fps, RUN, Look.random(rng), 0.0)
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
        track: list[Sprite | None] = list(_approach(rng, scene, spec, path, s_stand, -side, start, look))
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
            track.extend(_walk_track(scene, path, s_stand, side, speeds, spec.fps, WALK, look, 0.0))
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
    track: list[Sprite | None] = list(_approach(rng, scene, spec, path, s_fall, direction, start, look))
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
        track.extend(_walk_track(scene, path, s_after, direction, speeds, spec.fps, WALK, look, 0.0))
    return Event([track[:n]], start, min(n, start + fall + lie + rise))


def _projectile(rng: np.random.Generator, n: int, release: int, x: float, y: float, h: float, facing: int,
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
    thrower: list[Sprite | None] = list(_approach(rng, scene, spec, path, s_stop, direction, start, look))
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
        track, rest = _projectile(rng, n, release, x, y + 1, h, facing, flight)  # +1: drawn in front of the thrower
        tracks.append(track)
        end = max(end, rest, release + follow)
    if n > len(thrower):
        speeds = np.full(n - len(thrower), WALK_SPEED)
        thrower.extend(_walk_track(scene, path, s_stop, direction, speeds, spec.fps, WALK, look, 0.0))
    return Event([thrower[:n]] + tracks, start, min(n, end))


# --------------------------------------------------------------------------- planning and rendering


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


def render_clip(spec: ClipSpec) -> np.ndarray:
    """The frames of one clip: [n_frames, height, width, 3] uint8 RGB."""
    return render_plan(plan_clip(spec))


NOISE_BANK = 12  # sensor-noise frames drawn per clip and reused in random order: 20x cheaper than fresh noise


def render_plan(plan: ClipPlan) -> np.ndarray:
    spec, scene, cfg = plan.spec, plan.scene, plan.spec.scene
    rng = np.random.default_rng([cfg.scene_id, spec.seed, 3])
    n, W, H = spec.n_frames, cfg.width, cfg.height
    t = np.arange(n) / spec.fps
    drift = np.cumsum(rng.standard_normal(n)) / math.sqrt(max(n, 1))
    gains = 1 + cfg.flicker * (np.sin(2 * math.pi * rng.uniform(0.3, 1.5) * t + rng.uniform(0, 6.3)) + 0.5 * drift)
    gains_q = np.round(gains * 1024).astype(np.int32)  # fixed point: integer maths keeps a frame under a millisecond
    noise = np.round(rng.standard_normal((NOISE_BANK, H, W, 3), dtype=np.float32) * cfg.noise_sigma).astype(np.int32)
    clock = int(rng.integers(0, 86400 - n // spec.fps - 1))
    frames = np.empty((n, H, W, 3), dtype=np.uint8)
    bank, overlay, overlay_second = 0, None, -1
    for f in range(n):
        img = scene.background.copy()
        draw = ImageDraw.Draw(img, "RGBA")
        sprites = [track[f] for track in plan.tracks if track[f] is not None]
        for sprite in sprites:
            _draw_shadow(draw, sprite)
        for sprite in sorted(sprites, key=lambda s: s.y):
            _DRAWERS[type(sprite)](draw, sprite)
        if cfg.timestamp:
            second = clock + f // spec.fps
            if second != overlay_second:
                overlay, overlay_second = _clock_overlay(scene.camera, second, H), second
            img.paste(overlay, (2, 1), overlay)
        pixels = np.asarray(img).astype(np.int32)
        pixels *= gains_q[f]
        pixels >>= 10
        bank = (bank + int(rng.integers(1, NOISE_BANK))) % NOISE_BANK  # never the same noise twice in a row
        pixels += noise[bank]
        np.clip(pixels, 0, 255, out=pixels)
        frames[f] = pixels
    return frames


def _clock_overlay(camera: int, second: int, height: int) -> Image.Image:
    """The burnt-in camera name and time of day, white on a black outline, as an RGBA patch."""
    text = f"CAM{camera:02d}  {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
    font = _clock_font(height)
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGBA", (1, 1))).textbbox((1, 1), text, font=font, stroke_width=1)
    patch = Image.new("RGBA", (int(right) + 2, int(bottom) + 2), (0, 0, 0, 0))
    ImageDraw.Draw(patch).text((1, 1), text, fill=(240, 240, 240, 255), font=font, stroke_width=1, stroke_fill=(0, 0, 0, 255))
    return patch


@functools.lru_cache(maxsize=8)
def _clock_font(height: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=max(6, height // 22))
    except ImportError:  # Pillow without FreeType: the fixed-size bitmap font
        return ImageFont.load_default()


def _draw_shadow(draw: ImageDraw.ImageDraw, s: Sprite) -> None:
    if isinstance(s, Pose):
        lying = math.sin(s.tilt)
        cx, w = s.x + s.facing * 0.45 * s.h * lying, 0.25 * s.h + 0.3 * s.h * lying
        draw.ellipse([cx - w, s.y - 0.05 * s.h, cx + w, s.y + 0.05 * s.h], fill=(0, 0, 0, 60))
    elif isinstance(s, Vehicle):
        draw.ellipse([s.x - 1.45 * s.h, s.y - 0.1 * s.h, s.x + 1.45 * s.h, s.y + 0.1 * s.h], fill=(0, 0, 0, 80))
    else:
        r = max(1.0, 0.05 * s.h)
        draw.ellipse([s.x - r, s.y - 0.5 * r, s.x + r, s.y + 0.5 * r], fill=(0, 0, 0, 70))


def _shade(colour: Color, k: float) -> Color:
    return tuple(int(c * k) for c in colour)


def _draw_person(draw: ImageDraw.ImageDraw, p: Pose) -> None:
    """A side-view figure built in body-height units (feet at the origin, y up), mirrored to
    `facing`, rotated by `tilt` about the feet, then scaled and placed on the feet point."""
    g, a, ph = p.gait, p.amp, p.phase
    hip = (0.0, 0.5)
    legs = []
    for off in (0.0, math.pi):  # near leg, far leg half a cycle apart
        thigh = g.stride * a * math.sin(ph + off)
        shin = thigh - g.knee * a * max(0.0, math.cos(ph + off)) - 0.05
        knee = (hip[0] + 0.26 * math.sin(thigh), hip[1] - 0.26 * math.cos(thigh))
        legs.append([hip, knee, (knee[0] + 0.26 * math.sin(shin), knee[1] - 0.26 * math.cos(shin))])
    lift = -min(leg[2][1] for leg in legs) + g.bounce * a * abs(math.cos(ph))
    lean = g.lean * min(1.0, a) + p.lean
    shoulder = (hip[0] + 0.3 * math.sin(lean), hip[1] + 0.3 * math.cos(lean))
    head = (shoulder[0] + 0.11 * math.sin(lean), shoulder[1] + 0.11 * math.cos(lean))
    swing = g.arm * a * math.sin(ph)
    near_u, near_e, far_u, far_e = p.arms if p.arms is not None else (-swing, g.elbow, swing, g.elbow)
    arms = []
    for u, e in ((near_u, near_e), (far_u, far_e)):
        elbow = (shoulder[0] + 0.17 * math.sin(u), shoulder[1] - 0.17 * math.cos(u))
        arms.append([shoulder, elbow, (elbow[0] + 0.16 * math.sin(u + e), elbow[1] - 0.16 * math.cos(u + e))])

    f, h = p.facing, p.h
    cos_t, sin_t = math.cos(p.tilt), math.sin(p.tilt)

    def place(pt: tuple[float, float]) -> tuple[float, float]:
        X, Y = f * pt[0], pt[1] + lift
        return p.x + h * (X * cos_t + f * Y * sin_t), p.y - h * (-f * X * sin_t + Y * cos_t)

    leg_w, arm_w, torso_w = max(1, round(0.08 * h)), max(1, round(0.055 * h)), max(2, round(0.16 * h))
    look = p.look
    draw.line([place(q) for q in legs[1]], fill=_shade(look.trousers, 0.75), width=leg_w, joint="curve")
    draw.line([place(q) for q in arms[1]], fill=_shade(look.shirt, 0.75), width=arm_w, joint="curve")
    draw.line([place(hip), place(shoulder)], fill=look.shirt, width=torso_w)
    draw.line([place(q) for q in legs[0]], fill=look.trousers, width=leg_w, joint="curve")
    draw.line([place(q) for q in arms[0]], fill=look.shirt, width=arm_w, joint="curve")
    hx, hy = place(head)
    r = max(1.0, 0.075 * h)
    draw.ellipse([hx - r, hy - r, hx + r, hy + r], fill=look.hair)
    fx, fy = place((head[0] + 0.025, head[1] - 0.015))
    r *= 0.75
    draw.ellipse([fx - r, fy - r, fx + r, fy + r], fill=look.skin)


def _draw_vehicle(draw: ImageDraw.ImageDraw, v: Vehicle) -> None:
    """A car 2.6 body heights long (4.4 m), built in body-height units and mirrored to `facing`."""
    f, h = v.facing, v.h

    def place(x: float, y: float) -> tuple[float, float]:
        return v.x + f * x * h, v.y - y * h

    draw.polygon([place(-1.3, 0.2), place(1.3, 0.2), place(1.3, 0.55), place(0.45, 0.62), place(-1.3, 0.62)], fill=v.colour)
    draw.polygon([place(-0.95, 0.62), place(0.4, 0.62), place(0.05, 0.95), place(-0.8, 0.95)], fill=_shade(v.colour, 0.85))
    glass = (150, 175, 190)
    draw.polygon([place(-0.85, 0.64), place(-0.45, 0.64), place(-0.45, 0.9), place(-0.75, 0.9)], fill=glass)
    draw.polygon([place(-0.38, 0.64), place(0.3, 0.64), place(0.02, 0.9), place(-0.38, 0.9)], fill=glass)
    draw.rectangle(_box(place(1.22, 0.4), place(1.3, 0.48)), fill=(250, 240, 180))
    draw.rectangle(_box(place(-1.3, 0.4), place(-1.24, 0.5)), fill=(200, 30, 30))
    r = 0.17 * h
    for wx in (-0.8, 0.8):
        cx, cy = place(wx, 0.17)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(25, 25, 25))
        draw.ellipse([cx - 0.45 * r, cy - 0.45 * r, cx + 0.45 * r, cy + 0.45 * r], fill=(170, 170, 175))
        dx, dy = 0.9 * r * math.cos(f * v.wheel_angle), 0.9 * r * math.sin(f * v.wheel_angle)
        draw.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=(90, 90, 90), width=max(1, round(0.04 * h)))


def _box(a: tuple[float, float], b: tuple[float, float]) -> list[float]:
    """PIL wants rectangles as (left, top, right, bottom); mirrored points may come in either order."""
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])]


def _draw_projectile(draw: ImageDraw.ImageDraw, p: Projectile) -> None:
    r = max(1.5, 0.08 * p.h)  # a bottle or a stone, drawn a little large so it survives a 224 crop
    cy = p.y - p.z
    draw.ellipse([p.x - r, cy - r, p.x + r, cy + r], fill=p.colour, outline=_shade(p.colour, 0.5))


_DRAWERS: dict[type, Callable] = {Pose: _draw_person, Vehicle: _draw_vehicle, Projectile: _draw_projectile}


# --------------------------------------------------------------------------- files

CODECS = ("libx264", "libx264rgb")


def write_clip(path: str | Path, frames: np.ndarray, fps: int = 25, codec: str = "libx264", crf: int = 18,
               preset: str = "veryfast") -> Path:
    """Write [N,H,W,3] uint8 RGB frames as an H.264 mp4.

    `libx264` (yuv420p, constant quality `crf`) is what cameras and datasets ship; `libx264rgb`
    at qp 0 is lossless, so a decoder returns exactly these pixels (tests). Written to a temporary
    name and renamed, so an interrupted run never leaves a truncated video behind.
    """
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty [N,H,W,3] uint8 array, got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if codec == "libx264" and (width % 2 or height % 2):
        raise ValueError(f"yuv420p needs even width and height, got {width}x{height}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        if codec == "libx264":
            stream.pix_fmt, stream.options = "yuv420p", {"crf": str(crf), "preset": preset}
        else:
            stream.pix_fmt, stream.options = "rgb24", {"qp": "0", "preset": preset}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class ClipRecord:
    """One generated video."""

    video: str  # id: path under videos/ without extension, '/'-separated (e.g. "abnormal/fight_003")
    path: Path
    label: int  # 0 normal, 1 abnormal
    kind: str  # "none" or the anomaly name
    scene_id: int
    seed: int
    n_frames: int
    fps: int
    gt: tuple[Interval, ...]  # abnormal frame intervals [start, end)


@dataclass
class DatasetInfo:
    """What `make_dataset` wrote."""

    root: Path
    videos_dir: Path  # the folder to hand to `vad extract`; ids are relative to it
    labels_csv: Path  # video,label
    gt_csv: Path  # video,start_frame,end_frame (end exclusive), one row per interval
    clips_csv: Path  # video,label,kind,scene_id,seed,n_frames,fps: how each clip was made
    clips: list[ClipRecord]


def make_dataset(out_dir: str | Path, n_normal: int, n_abnormal: int, seed: int = 0, size: tuple[int, int] = (320, 240),
                 n_frames: int | tuple[int, int] = (96, 240), fps: int = 25, n_scenes: int = 4,
                 kinds: tuple[str, ...] | None = None, codec: str = "libx264", progress: bool = False) -> DatasetInfo:
    """Render and write a dataset: videos/{normal,abnormal}/*.mp4 plus labels.csv, gt.csv and clips.csv.

    Clips are spread round-robin over `n_scenes` cameras, normal and abnormal alike, so that a
    detector cannot tell the classes apart by the scene; abnormal clips cycle through `kinds`
    (default: every registered anomaly). `n_frames` is a fixed length or an inclusive range drawn
    per clip. Scene layouts follow from `seed`, so different seeds show different places.
    """
    from vad.progress import progress_bar

    kinds = tuple(kinds) if kinds else tuple(ANOMALIES)
    unknown = [k for k in kinds if k not in ANOMALIES]
    if unknown:
        raise ValueError(f"unknown anomaly kinds {unknown}; known: {', '.join(ANOMALIES)}")
    if n_normal < 0 or n_abnormal < 0 or n_scenes < 1:
        raise ValueError("n_normal and n_abnormal must be >= 0 and n_scenes >= 1")
    root = Path(out_dir)
    videos_dir = root / "videos"
    rng = np.random.default_rng([seed, 0xDA7A])
    scenes = [SceneConfig(scene_id=int(np.random.SeedSequence([seed, k]).generate_state(1)[0]), width=size[0], height=size[1])
              for k in range(n_scenes)]
    jobs = [(0, i, "none", f"normal/normal_{i:03d}") for i in range(n_normal)]
    jobs += [(1, i, kinds[i % len(kinds)], f"abnormal/{kinds[i % len(kinds)]}_{i:03d}") for i in range(n_abnormal)]
    clips = []
    for label, i, kind, video in progress_bar(jobs, desc="synth", unit="clip", disable=not progress):
        length = n_frames if isinstance(n_frames, int) else int(rng.integers(n_frames[0], n_frames[1] + 1))
        clip_seed = int(np.random.SeedSequence([seed, label, i]).generate_state(1)[0])
        spec = ClipSpec(scene=scenes[i % n_scenes], seed=clip_seed, n_frames=length, fps=fps, anomaly=kind)
        plan = plan_clip(spec)
        path = write_clip(videos_dir / f"{video}.mp4", render_plan(plan), fps=fps, codec=codec)
        clips.append(ClipRecord(video, path, label, kind, spec.scene.scene_id, clip_seed, length, fps, tuple(plan.gt)))

    root.mkdir(parents=True, exist_ok=True)
    info = DatasetInfo(root, videos_dir, root / "labels.csv", root / "gt.csv", root / "clips.csv", clips)
    _write_csv(info.labels_csv, ["video", "label"], [(c.video, c.label) for c in clips])
    _write_csv(info.gt_csv, ["video", "start_frame", "end_frame"], [(c.video, s, e) for c in clips for s, e in c.gt])
    _write_csv(info.clips_csv, ["video", "label", "kind", "scene_id", "seed", "n_frames", "fps"],
               [(c.video, c.label, c.kind, c.scene_id, c.seed, c.n_frames, c.fps) for c in clips])
    log.info("synth: %d normal + %d abnormal clips in %s", n_normal, n_abnormal, videos_dir)
    return info


def _write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    tmp.replace(path)
