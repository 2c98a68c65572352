"""Frame-level evaluation with RTFM's conventions (docs/method.md (Evaluation)), so numbers compare with papers.

Snippet scores are repeated 16 times and truncated to the video's frame count (segment-pooled
features, Sultani's C3D: segment i of 32 on frames floor(i*N/32) .. floor((i+1)*N/32) - 1; the
cache entry's FrameLayout says which); frame GT comes from the intervals (end exclusive); all
test videos are concatenated in the labels' order and scored with scikit-learn.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from vad.errors import VadError
from vad.extract.cache import FeatureCache, FrameLayout
from vad.files import atomic_write_bytes, output_problem
from vad.models.correction import correct_scores
from vad.models.detector import ARMSDetector
from vad.models.inference import refuse_non_finite, score_video
from vad.progress import progress_bar

HARD_BINS = (("[0,0.4]", 0.0, 0.4), ("(0.4,0.8]", 0.4, 0.8), ("(0.8,1]", 0.8, 1.0))
ALARM_THRESHOLD = 0.5  # a frame above it counts as an alarm in false_alarm_rate

Frames = int | FrameLayout  # a video's frames: a count (its rows are 16-frame snippets) or its cache entry's layout


def layout_of(scores: np.ndarray, frames: Frames) -> FrameLayout:
    return frames if isinstance(frames, FrameLayout) else FrameLayout(len(scores), int(frames))


def frame_scores(snippet_scores: np.ndarray, n_frames: Frames) -> np.ndarray:
    """Each row's score on its frames (FrameLayout): a count means 16-frame snippets, cut to n_frames
    (the last snippet is padded); a layout of pooled segments spreads each over its share of the video."""
    return layout_of(snippet_scores, n_frames).spread(snippet_scores)


def frame_labels(intervals: Sequence[tuple[int, int]], n_frames: int) -> np.ndarray:
    labels = np.zeros(n_frames, dtype=np.uint8)
    for start, end in intervals:
        labels[start:end] = 1
    return labels


def hard_anomaly_bins(scores: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """Fig. 7: share of truly abnormal frames scoring in [0,0.4], (0.4,0.8], (0.8,1].

    Frames carry their snippet's score, so this is the snippet share weighted by frames.
    """
    positive = scores[labels == 1]
    if positive.size == 0:
        return {name: None for name, _, _ in HARD_BINS}
    shares = {}
    for name, low, high in HARD_BINS:
        inside = (positive <= high) & ((positive >= low) if low == 0.0 else (positive > low))
        shares[name] = float(inside.mean())
    return shares


def frame_metrics(scores: np.ndarray, labels: np.ndarray) -> dict:
    """ROC-AUC, AP both ways (docs/method.md (Evaluation)) and the score gap of Table IV on frame arrays."""
    both = 0 < labels.sum() < labels.size
    result = {"auc": None, "ap": None, "ap_trapezoid": None, "score_gap": None}
    if both:
        precision, recall, _ = precision_recall_curve(labels, scores)
        result.update(
            auc=float(roc_auc_score(labels, scores)),
            ap=float(average_precision_score(labels, scores)),
            ap_trapezoid=float(auc(recall, precision)),
            score_gap=float(scores[labels == 1].mean() - scores[labels == 0].mean()),
        )
    return result


def localisation_metrics(abnormal: Sequence[tuple[np.ndarray, np.ndarray]], normal: Sequence[np.ndarray]) -> dict:
    """The figures that see a flat curve, which frame AUC over all videos cannot.

    abnormal: (frame scores, frame labels) of each abnormal test video; normal: frame scores of
    each normal test video.
    - auc_abnormal / ap_abnormal: ROC-AUC and AP over the frames of abnormal videos only (AUC_A
      in the literature): a detector that only recognises abnormal videos scores 0.5 here.
    - spread_abnormal: mean over abnormal videos of the standard deviation of their frame scores
      (0 for a flat curve).
    - false_alarm_rate: share of the frames of normal videos scoring above 0.5.
    """
    result = {"auc_abnormal": None, "ap_abnormal": None, "spread_abnormal": None, "false_alarm_rate": None}
    if abnormal:
        scores = np.concatenate([s for s, _ in abnormal])
        labels = np.concatenate([y for _, y in abnormal])
        if 0 < labels.sum() < labels.size:
            result["auc_abnormal"] = float(roc_auc_score(labels, scores))
            result["ap_abnormal"] = float(average_precision_score(labels, scores))
        result["spread_abnormal"] = float(np.mean([s.std() for s, _ in abnormal]))
    if normal:
        result["false_alarm_rate"] = float((np.concatenate(normal) > ALARM_THRESHOLD).mean())
    return result


def evaluate(
    snippet_scores: Mapping[str, np.ndarray],
    n_frames: Mapping[str, Frames],
    gt: Mapping[str, Sequence[tuple[int, int]]],
    order: Sequence[str],
) -> dict:
    """Concatenate the videos of `order` and compute every frame-level figure (n_frames: counts or layouts)."""
    all_scores, all_labels = [], []
    abnormal_videos, normal_videos = [], []
    for video_id in order:
        scores = frame_scores(snippet_scores[video_id], n_frames[video_id])
        labels = frame_labels(gt.get(video_id, ()), len(scores))
        all_scores.append(scores)
        all_labels.append(labels)
        if labels.any():
            abnormal_videos.append((scores, labels))
        else:
            normal_videos.append(scores)
    scores = np.concatenate(all_scores) if all_scores else np.empty(0)
    labels = np.concatenate(all_labels) if all_labels else np.empty(0, dtype=np.uint8)
    result = frame_metrics(scores, labels)
    result.update(n_videos=len(order), n_frames=int(labels.size), n_abnormal_frames=int(labels.sum()))
    result.update(localisation_metrics(abnormal_videos, normal_videos))
    result["hard_anomaly_bins"] = hard_anomaly_bins(scores, labels)
    # A flat detector shows abnormal videos raised as a whole.
    result["monitors"] = {
        "abnormal_video_share_above_0.5": float((np.concatenate([s for s, _ in abnormal_videos]) > 0.5).mean()) if abnormal_videos else None,
        "abnormal_frame_share_above_0.5": float((scores[labels == 1] > 0.5).mean()) if labels.any() else None,
        "normal_frame_share_above_0.5": float((scores[labels == 0] > 0.5).mean()) if (labels == 0).any() else None,
    }
    return result


def cache_layouts(cache: FeatureCache, video_ids: Sequence[str]) -> dict[str, FrameLayout]:
    """Each video's FrameLayout from the cache metadata (CacheError naming the entry and field when it is
    corrupt; FrameCountsMissing for pooled segments without a frame count)."""
    return {video_id: cache.frame_layout(video_id) for video_id in video_ids}


def cache_frame_counts(cache: FeatureCache, video_ids: Sequence[str]) -> dict[str, int]:
    """n_frames from the cache metadata when present, else 16 * T (RTFM's padded length)."""
    return {video_id: layout.n_frames for video_id, layout in cache_layouts(cache, video_ids).items()}


def score_cache(model: ARMSDetector, cache: FeatureCache, video_ids: Sequence[str], progress: bool = True,
                model_name: str = "being evaluated") -> dict[str, np.ndarray]:
    """Raw snippet scores of each video: full T, every crop, averaged over crops. NaN or infinite scores
    are refused (NonFiniteScores names the video and `model_name`, the model file)."""
    return {
        video_id: refuse_non_finite(score_video(model, cache.load(video_id, mmap=True)), video_id, model_name)
        for video_id in progress_bar(video_ids, desc="scoring", unit="video", disable=not progress, leave=False)
    }


SCORES_HEADER = "frame,score"  # the first line of DIR/<video_id>.csv, by which a rerun knows the file as vad's


def frame_score_paths(directory: Path, video_ids: Sequence[str]) -> dict[str, Path]:
    """DIR/<video_id>.csv of every id, all checked before any is written (and before the scoring):
    VadError for an id that would land outside DIR, for a file there that vad did not write (its
    first line is not SCORES_HEADER) and for one that cannot be written (vad.files.output_problem:
    a name too long, a file where a folder must be, a folder not writable)."""
    root = Path(directory).resolve()
    paths = {}
    for video_id in video_ids:
        path = (root / f"{video_id}.csv").resolve()
        if root not in path.parents:
            raise VadError(f"video id {video_id!r} would be written outside {directory}")
        if path.is_file():
            with open(path, "rb") as handle:
                if handle.readline(64).rstrip(b"\r\n") != SCORES_HEADER.encode():
                    raise VadError(f"{path}: the scores of {video_id} would overwrite this file, which vad did not write; "
                                   f"move it away or choose another --scores-out")
        problem = output_problem(path)
        if problem is not None:
            raise VadError(f"--scores-out {directory}: cannot write the scores of {video_id} as {path}: {problem}")
        paths[video_id] = path
    return paths


def write_frame_scores(directory: Path, scores: Mapping[str, np.ndarray], n_frames: Mapping[str, Frames]) -> list[Path]:
    """DIR/<video_id>.csv with `frame,score` per video (ids with folders get the same folders);
    every id is checked (frame_score_paths) before the first file is written."""
    paths = frame_score_paths(directory, list(scores))
    written = []
    for video_id, snippet in scores.items():
        frames = frame_scores(snippet, n_frames[video_id])
        text = SCORES_HEADER + "\n" + "".join(f"{i},{v:.6f}\n" for i, v in enumerate(frames))
        atomic_write_bytes(paths[video_id], text.encode())
        written.append(paths[video_id])
    return written


def final_scores(raw_scores: Mapping[str, np.ndarray], correction: bool = True) -> dict[str, np.ndarray]:
    """Snippet scores as reported: corrected (docs/method.md (Score correction)) unless switched off."""
    return {v: correct_scores(s) for v, s in raw_scores.items()} if correction else dict(raw_scores)


def evaluate_scores(raw_scores: Mapping[str, np.ndarray], n_frames: Mapping[str, Frames], gt, order, correction: bool = True) -> dict:
    """evaluate() on raw or corrected snippet scores."""
    scores = final_scores(raw_scores, correction)
    result = evaluate(scores, n_frames, gt, order)
    result["correction"] = correction
    return result
