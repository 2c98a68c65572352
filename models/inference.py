"""Running a detector on features: pooled training bags, or a whole video with its crops."""
from __future__ import annotations

import numpy as np
import torch

from vad.errors import RunFailure
from vad.models.detector import ARMSDetector
from vad.runtimes import module_device

# Above this many snippets a video's crops go through the network one at a time: attention
# memory grows with T^2 per crop (8 heads x T^2 floats).
LONG_VIDEO_SNIPPETS = 1024


@torch.no_grad()
def score_bags(model: ARMSDetector, bags: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """bags [N, S, D] (any device) -> scores [N, S] on the CPU, in eval mode."""
    model.eval()
    device = module_device(model)
    out = [model(bags[i:i + batch_size].to(device)).float().cpu() for i in range(0, bags.shape[0], batch_size)]
    return torch.cat(out) if out else torch.empty(0, bags.shape[1])


@torch.no_grad()
def score_video(model: ARMSDetector, features: np.ndarray) -> np.ndarray:
    """features [T, C, D] -> snippet scores [T]: every crop scored at full T, then averaged (RTFM).
    `model`: the detector, or its export run by another runtime (vad.runtimes.RuntimeNetwork)."""
    model.eval()
    device = module_device(model)
    bags = torch.tensor(np.swapaxes(features, 0, 1), dtype=torch.float32)  # [C, T, D], a copy: cache entries are read-only memory maps
    step = 1 if bags.shape[1] > LONG_VIDEO_SNIPPETS else bags.shape[0]
    scores = torch.cat([model(bags[i:i + step].to(device)).float().cpu() for i in range(0, bags.shape[0], step)])
    return scores.mean(dim=0).numpy().astype(np.float64)


class NonFiniteScores(RunFailure):
    """A detector gave NaN or infinite scores: nothing is written from them (JSON, CSV, metrics cannot hold them)."""


def refuse_non_finite(scores, video, model, frames: tuple[int, int] | None = None) -> np.ndarray:
    """`scores` when all are finite, else NonFiniteScores naming the video (or source) and the model;
    `frames`: the [start, end) frames of a single live score."""
    scores = np.asarray(scores, dtype=np.float64)
    bad = int(np.count_nonzero(~np.isfinite(scores)))
    if bad:
        what = (f"a NaN or infinite score at frames {frames[0]}-{frames[1]}" if frames is not None
                else f"NaN or infinite scores ({bad} of {scores.size} snippets)")
        raise NonFiniteScores(f"{video}: the model {model} gave {what}; its weights or these features hold NaN or infinity "
                              "(a diverged training run leaves NaN weights): retrain it or use another model")
    return scores
