"""Building a scene from its `SceneConfig`: the walkway layout and the painted background, once per config."""
from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from vad.synth.config import Color, SceneConfig
from vad.synth.geometry import Polyline, Scene


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
