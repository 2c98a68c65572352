"""Pillow's uint8 bilinear resize, bit for bit, as integer tensor arithmetic on any torch device.

The reference profiles resize with Pillow (preprocess.resize_frame). On a GPU machine that CPU
resize, and moving ten 224x224 crops per frame over the bus instead of the smaller decoded
frame, starve the network (bench/THROUGHPUT.md). This module reproduces Pillow's separable
filter exactly, so resizing can move to the device without changing a single feature value:
the same coefficients (computed in double precision, then fixed point with 22 fractional
bits), the same order of the two passes (asked of Pillow: pillow_vertical_first), and the same
rounding and clipping to uint8 after each pass (Pillow libImaging/Resample.c: precompute_coeffs, normalize_coeffs_8bpc,
ImagingResample{Horizontal,Vertical}_8bpc, clip8).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

PRECISION_BITS = 32 - 8 - 2  # Pillow: 8 bits of result, 2 bits of headroom in an int32 accumulator
BILINEAR_SUPPORT = 1.0


def _bilinear(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


@lru_cache(maxsize=64)
def pillow_bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(index [out, K] int64, weight [out, K] int32) of Pillow's bilinear filter for one axis.

    Follows precompute_coeffs for the whole-image box (in0 = 0, in1 = in_size): taps past a
    row's own support get weight 0 and repeat its first index, so every row has K taps.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = BILINEAR_SUPPORT * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    index = np.zeros((out_size, ksize), dtype=np.int64)
    weight = np.zeros((out_size, ksize), dtype=np.int32)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)  # int() truncates toward zero, as C's cast
        xmax = min(int(center + support + 0.5), in_size) - xmin
        taps = [_bilinear((x + xmin - center + 0.5) / filterscale) for x in range(xmax)]
        total = sum(taps)
        if total != 0.0:
            taps = [w / total for w in taps]
        # normalize_coeffs_8bpc: round half away from zero (bilinear weights are never negative)
        weight[xx, :xmax] = [int(0.5 + w * (1 << PRECISION_BITS)) for w in taps]
        index[xx, :] = xmin
        index[xx, :xmax] = np.arange(xmin, xmin + xmax)
    return index, weight


@lru_cache(maxsize=64)
def _taps_on(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """pillow_bilinear_taps as tensors on `device`, kept so that each snippet does not copy them again."""
    index, weight = pillow_bilinear_taps(in_size, out_size)
    return torch.from_numpy(index).to(device), torch.from_numpy(weight).to(device)


def _resample_axis(frames: torch.Tensor, axis: int, out_size: int) -> torch.Tensor:
    """One Pillow pass along `axis` of an integer tensor, rounded and clipped to 0..255 (clip8)."""
    index, weight = _taps_on(frames.shape[axis], out_size, frames.device)
    shape = [1] * frames.dim()
    shape[axis] = out_size
    acc = torch.full((), 1 << (PRECISION_BITS - 1), dtype=torch.int32, device=frames.device)
    for k in range(index.shape[1]):
        acc = acc + frames.index_select(axis, index[:, k]) * weight[:, k].view(shape)
    return (acc >> PRECISION_BITS).clamp_(0, 255)


def _two_passes(frames: torch.Tensor, out_h: int, out_w: int, vertical_first: bool) -> torch.Tensor:
    out = frames.to(torch.int32)
    passes = [(frames.dim() - 2, out_w), (frames.dim() - 3, out_h)]  # (axis, size): horizontal, vertical
    for axis, size in reversed(passes) if vertical_first else passes:
        if size != out.shape[axis]:  # Pillow skips a pass whose size does not change
            out = _resample_axis(out, axis, size)
    return out.to(torch.uint8)


@lru_cache(maxsize=256)
def pillow_vertical_first(in_h: int, in_w: int, out_h: int, out_w: int) -> bool:
    """Whether the installed Pillow runs the vertical pass first for this size change.

    The two orders round differently in between, and Pillow's choice depends on the sizes by a
    rule that is not the same in every release (Pillow 13 takes the vertical pass first, e.g.,
    for 1016x307 -> 847x256 but not for 480x856 -> 256x456). So the order is asked of Pillow
    itself, once per size: random probe frames, resized by Pillow and by both orders here.
    """
    # Enough probe frames for a few thousand output values: on tiny outputs the two orders often
    # agree, and a probe on which they agree cannot tell them apart.
    n_probes = min(64, -(-3000 // (out_h * out_w * 3)))
    probe = np.random.default_rng(in_h * 100_003 + in_w).integers(0, 256, (n_probes, in_h, in_w, 3), dtype=np.uint8)
    want = torch.from_numpy(np.stack([np.array(Image.fromarray(f).resize((out_w, out_h), Image.BILINEAR)) for f in probe]))
    for vertical_first in (False, True):
        if torch.equal(_two_passes(torch.from_numpy(probe), out_h, out_w, vertical_first), want):
            return vertical_first
    raise RuntimeError(f"this Pillow resizes {in_w}x{in_h} -> {out_w}x{out_h} in a way vad does not reproduce; "
                       "use --resize-on workers")


def resize_like_pillow(frames: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """uint8 [..., H, W, C] -> uint8 [..., out_h, out_w, C], equal to PIL Image.resize(BILINEAR).

    int32 arithmetic cannot overflow: the weights of a row sum to about 2**22, times 255 plus
    the rounding half stays below 2**31.
    """
    if frames.dtype != torch.uint8:
        raise TypeError(f"resize_like_pillow needs uint8 frames, got {frames.dtype}")
    height, width = frames.shape[-3], frames.shape[-2]
    vertical_first = out_h != height and out_w != width and pillow_vertical_first(height, width, out_h, out_w)
    return _two_passes(frames, out_h, out_w, vertical_first)
