"""A frame-level anomaly curve as a picture, readable at a glance (the paper's Fig. 10).

The score over time (seconds), the threshold, the detected abnormal intervals shaded, the
ground truth in another colour, and below the curve a strip of thumbnails at the highest peaks
and at calm moments, each lettered on the curve and captioned with its time and score. Normal
moments are drawn faded, as in the paper.

`intervals_above` is the one place where a threshold turns scores into intervals.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from vad.files import atomic_write_bytes
from vad.pipeline.outputs import PLOT_MARK

Interval = tuple[int, int]
# Frames for thumbnails: an indexable [N,H,W,3] array/sequence, or a callable that takes the sorted
# frame indices wanted and returns their frames in that order (so a streaming decoder makes one pass).
FrameSource = np.ndarray | Sequence[np.ndarray] | Callable[[list[int]], Sequence[np.ndarray]]

ABNORMAL_COLOUR = "#d62728"
GT_COLOUR = "#1f77b4"
CURVE_COLOUR = "#222222"


def intervals_above(scores: Sequence[float] | np.ndarray, threshold: float) -> list[Interval]:
    """Maximal runs of frames scoring strictly above `threshold`, as [start, end) frame intervals
    ("predictions higher than 0.5 are selected as abnormal frames", paper Fig. 10). NaN is never above."""
    above = np.asarray(scores, dtype=np.float64).ravel() > threshold
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def pick_thumbnail_frames(scores: np.ndarray, n_peaks: int = 3, n_normal: int = 2) -> list[tuple[int, str]]:
    """(frame, "peak"|"normal") sorted by frame: the highest local peaks, then the calmest moments,
    each at least 1/(2k) of the video away from those already picked, so they show different moments."""
    n = len(scores)
    gap = n // (2 * max(1, n_peaks + n_normal))
    free = np.ones(n, dtype=bool)
    picked: list[tuple[int, str]] = []
    for kind, count, order in (("peak", n_peaks, -scores), ("normal", n_normal, scores)):
        for frame in np.argsort(order, kind="stable"):
            if len([p for p in picked if p[1] == kind]) == count:
                break
            if free[frame]:
                picked.append((int(frame), kind))
                free[max(0, frame - gap):frame + gap + 1] = False
    return sorted(picked)


def plot_curve(path_png: str | Path, scores: Sequence[float] | np.ndarray, fps: float, *, threshold: float | None = None,
               intervals: Sequence[Interval] | None = None, gt_intervals: Sequence[Interval] | None = None,
               thumbnails: FrameSource | None = None, title: str | None = None, n_peaks: int = 3,
               n_normal: int = 2, dpi: int = 110) -> Path:
    """Draw the curve of one video and save it as a PNG.

    `intervals` are the detected abnormal [start, end) frame intervals; when omitted and a
    `threshold` is given they are `intervals_above(scores, threshold)`. `gt_intervals` are shaded
    in another colour. `thumbnails` supplies frames for the strip (see FrameSource); without it
    the figure is the curve alone. Returns the path written.
    """
    Figure, FigureCanvasAgg = _matplotlib()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError("plot_curve: no scores to plot")
    if fps <= 0:
        raise ValueError(f"plot_curve: fps must be positive, got {fps}")
    if intervals is None and threshold is not None:
        intervals = intervals_above(scores, threshold)
    n = len(scores)
    times = np.arange(n) / fps
    picks = pick_thumbnail_frames(scores, n_peaks, n_normal) if thumbnails is not None else []

    fig = Figure(figsize=(10, 5.6 if picks else 3.2), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2 if picks else 1, max(1, len(picks)), height_ratios=[1.5, 1] if picks else None,
                            hspace=0.3, wspace=0.06, left=0.07, right=0.98, top=0.87 if title else 0.92, bottom=0.04 if picks else 0.15)
    ax = fig.add_subplot(grid[0, :])
    for k, (start, end) in enumerate(gt_intervals or []):
        ax.axvspan(start / fps, end / fps, color=GT_COLOUR, alpha=0.12, lw=0, label="ground truth" if k == 0 else None)
        ax.axvspan(start / fps, end / fps, ymin=0, ymax=0.04, color=GT_COLOUR, alpha=0.9, lw=0)
    for k, (start, end) in enumerate(intervals or []):
        ax.axvspan(start / fps, end / fps, color=ABNORMAL_COLOUR, alpha=0.2, lw=0, label="detected abnormal" if k == 0 else None)
    ax.plot(times, scores, color=CURVE_COLOUR, lw=1.4, label="anomaly score")
    if threshold is not None:
        ax.axhline(threshold, color=ABNORMAL_COLOUR, ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlim(0, max(times[-1], 1 / fps))
    ax.set_ylim(0, 1.12)  # headroom for the thumbnail letters above peaks at 1
    ax.set_xlabel("time (s)")
    ax.set_ylabel("anomaly score")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False, ncol=4)
    if title:
        fig.suptitle(title, fontsize=11)
    if picks:
        _thumbnail_strip(fig, grid, ax, picks, scores, fps, intervals=intervals, source=thumbnails)
    path = Path(path_png)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": PLOT_MARK})  # the mark a rerun knows vad's plots by
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _thumbnail_strip(fig, grid, ax, picks: list[tuple[int, str]], scores: np.ndarray, fps: float,
                     *, intervals: Sequence[Interval] | None, source: FrameSource) -> None:
    """Thumbnails lettered on the curve; abnormal ones (inside a detected interval, or without
    intervals above 0.5 as in the paper) framed in red, normal ones faded."""
    frames_wanted = [frame for frame, _ in picks]
    frames = list(source(frames_wanted)) if callable(source) else [source[f] for f in frames_wanted]
    if len(frames) != len(frames_wanted):
        raise ValueError(f"thumbnail source returned {len(frames)} frames for {len(frames_wanted)} requested")
    for k, ((frame, _), image) in enumerate(zip(picks, frames)):
        letter = chr(ord("A") + k)
        abnormal = any(s <= frame < e for s, e in intervals) if intervals is not None else scores[frame] > 0.5
        colour = ABNORMAL_COLOUR if abnormal else "#7f7f7f"
        ax.plot(frame / fps, scores[frame], "o", ms=5, color=colour, zorder=5)
        ax.annotate(letter, (frame / fps, scores[frame]), xytext=(0, 7), textcoords="offset points",
                    ha="center", fontsize=9, fontweight="bold", color=colour)
        thumb = fig.add_subplot(grid[1, k])
        thumb.imshow(np.asarray(image), alpha=1.0 if abnormal else 0.5)
        thumb.set_xticks([])
        thumb.set_yticks([])
        for spine in thumb.spines.values():
            spine.set_color(colour)
            spine.set_linewidth(2.5 if abnormal else 1)
        thumb.set_title(f"{letter}  {frame / fps:.1f} s  score {scores[frame]:.2f}", fontsize=8, color=colour)


def _matplotlib():
    """matplotlib's object API with the Agg canvas: no pyplot global state, no display needed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # optional heavy dependency, imported only when plotting
        raise ImportError("plots need matplotlib: pip install matplotlib") from exc
    return Figure, FigureCanvasAgg
