"""Rendering a planned clip to frames: sprites over the background, lighting flicker, sensor noise, CCTV clock."""
from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vad.synth.actors import Pose, Projectile, Sprite, Vehicle
from vad.synth.config import ClipSpec, Color
from vad.synth.plan import ClipPlan, plan_clip


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
