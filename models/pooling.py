"""RTFM's fixed-length training view (docs/method.md (Training)): T snippets -> 32 segments."""
from __future__ import annotations

import numpy as np

N_SEGMENTS = 32


def segment_bounds(n_snippets: int, n_segments: int = N_SEGMENTS) -> np.ndarray:
    """b = floor(linspace(0, T, n+1)): segment i covers snippets b[i] .. b[i+1]-1."""
    if n_snippets < 1:
        raise ValueError("cannot pool a video without snippets")
    return np.floor(np.linspace(0, n_snippets, n_segments + 1)).astype(np.int64)


def pool_segments(features: np.ndarray, n_segments: int = N_SEGMENTS) -> np.ndarray:
    """features [T, ...] -> [n_segments, ...]: mean of each segment's snippets.

    When T < n_segments some segments are empty (b[i] == b[i+1]); as RTFM's process_feat they
    copy row b[i] (clamped to T-1), so short videos repeat snippets instead of inventing zeros.
    """
    n_snippets = features.shape[0]
    bounds = segment_bounds(n_snippets, n_segments)
    pooled = np.empty((n_segments, *features.shape[1:]), dtype=features.dtype)
    for i in range(n_segments):
        start, end = bounds[i], bounds[i + 1]
        if start == end:
            pooled[i] = features[min(start, n_snippets - 1)]
        else:
            pooled[i] = features[start:end].mean(axis=0)
    return pooled
