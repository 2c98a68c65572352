"""Score correction at inference (docs/method.md (Score correction)), our reading of MSL's module."""
from __future__ import annotations

import numpy as np


def video_level_score(scores: np.ndarray) -> float:
    """p of docs/method.md (Score correction): the mean of the top-k snippet scores, k = floor(T/16) + 1."""
    scores = np.asarray(scores, dtype=np.float64)
    k = min(len(scores), len(scores) // 16 + 1)
    return float(np.sort(scores)[-k:].mean())


def correct_scores(scores: np.ndarray) -> np.ndarray:
    """s~_t = sqrt(s_t * p), p = mean of the top-k snippet scores, k = floor(T/16) + 1.

    p is the video-level anomaly score: the geometric mean with it keeps the order of snippets
    inside a video and pulls down every snippet of a video that looks normal overall.
    """
    scores = np.asarray(scores, dtype=np.float64)
    return np.sqrt(scores * video_level_score(scores))
