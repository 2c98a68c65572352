"""Frame preprocessing shared by every backbone (docs/method.md, Snippets and features).

All geometry happens on uint8 RGB frames with Pillow's bilinear filter, because the reference
extractors did so and any other resize (cv2, torch's float interpolate) changes features
measurably: in the decode workers with Pillow itself, or next to the network with the
bit-exact integer port in resize_torch.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vad.extract.resize_torch import resize_like_pillow

# Frames per snippet: every released I3D feature set of the field (RTFM's UCF-Crime and
# ShanghaiTech features, those ARMS trains on) cuts videos into 16-frame snippets, and the
# evaluation spreads each snippet's score over its 16 frames. Defined here only.
CLIP_LEN = 16


@dataclass(frozen=True)
class Geometry:
    clip_len: int = CLIP_LEN  # frames per snippet
    short_side: int = 256  # shorter side after resize; the long side is truncated with int()
    crop_size: int = 224  # square crops fed to the network


def resized_size(height: int, width: int, short_side: int = 256) -> tuple[int, int]:
    """(new_h, new_w) of torchvision's Resize(short_side) on a PIL image: long side int()-truncated."""
    if height <= width:
        return short_side, int(short_side * width / height)
    return int(short_side * height / width), short_side


def resize_frame(frame: np.ndarray, short_side: int = 256) -> np.ndarray:
    """Pillow-bilinear resize (antialiased when shrinking) of one HxWx3 uint8 RGB frame."""
    new_h, new_w = resized_size(frame.shape[0], frame.shape[1], short_side)
    if (new_h, new_w) == frame.shape[:2]:
        return frame
    return np.asarray(Image.fromarray(frame).resize((new_w, new_h), Image.BILINEAR))


def jpeg_roundtrip(frame: np.ndarray, quality: int = 95) -> np.ndarray:
    """Encode to JPEG (4:2:0) and decode, as the ARMS author's extractor did through cv2.imwrite.

    With libjpeg-turbo, Pillow at quality 95 reproduces cv2.imwrite + PIL.open bit for bit.
    """
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality, subsampling="4:2:0")
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def crop_boxes(height: int, width: int, crop_size: int = 224) -> list[tuple[int, int]]:
    """(top, left) of torchvision FiveCrop: top-left, top-right, bottom-left, bottom-right, centre.

    The centre uses Python's round (half to even) like torchvision's center_crop, so a
    341-wide frame gets left 58, not 59.
    """
    if height < crop_size or width < crop_size:
        raise ValueError(f"frame {width}x{height} is smaller than the {crop_size}px crop")
    bottom, right = height - crop_size, width - crop_size
    centre = (int(round(bottom / 2.0)), int(round(right / 2.0)))
    return [(0, 0), (0, right), (bottom, 0), (bottom, right), centre]


def snippet_crops(snippet: np.ndarray | torch.Tensor, n_crops: int, crop_size: int = 224) -> torch.Tensor:
    """[..., F,h,w,3] resized uint8 frames -> [..., n_crops,F,crop,crop,3] uint8 tensor on the frames' device.

    n_crops 10 = TenCrop order: the five boxes on the frames, then the same five boxes on the
    horizontally flipped frames (so crop 9 is the centre of the flipped frame, not a flip of
    crop 4: they differ by a column when w - crop is odd). n_crops 1 = the centre crop.
    """
    snippet = torch.as_tensor(snippet)
    boxes = crop_boxes(snippet.shape[-3], snippet.shape[-2], crop_size)
    if n_crops == 1:
        boxes, sources = boxes[4:], [snippet]
    elif n_crops == 10:
        sources = [snippet, snippet.flip(-2)]
    else:
        raise ValueError(f"crops must be 1 or 10, got {n_crops}")
    crops = [src[..., top:top + crop_size, left:left + crop_size, :] for src in sources for top, left in boxes]
    return torch.stack(crops, dim=-5)


def finish_snippet(frames: torch.Tensor, n_crops: int, geometry: Geometry) -> torch.Tensor:
    """Decoded uint8 [..., F,H,W,3] frames -> [..., crops, F, crop, crop, 3], on the frames' device.

    The resize is Pillow's, reproduced bit for bit (resize_torch), so geometry can run next
    to the network instead of in the decode workers without changing the features.
    """
    new_h, new_w = resized_size(frames.shape[-3], frames.shape[-2], geometry.short_side)
    if (new_h, new_w) != tuple(frames.shape[-3:-1]):
        frames = resize_like_pillow(frames, new_h, new_w)
    return snippet_crops(frames, n_crops, geometry.crop_size)


def to_network_layout(crops: np.ndarray | torch.Tensor) -> torch.Tensor:
    """[..., F, H, W, 3] uint8 -> float32 [..., 3, F, H, W] with values 0..255 (not yet normalised)."""
    tensor = torch.as_tensor(crops)
    return tensor.movedim(-1, -4).float()


def normalise_caffe(x: torch.Tensor) -> torch.Tensor:
    """i3d-r50: (v - 114.75) / 57.375 on 0..255 values, a true float32 division as the reference does."""
    return (x - 114.75) / 57.375


def normalise_unit_range(x: torch.Tensor) -> torch.Tensor:
    """i3d-inception: v / 127.5 - 1, float32 arithmetic as in DeepMind's pipeline."""
    return x / 127.5 - 1.0
