"""The training set: every labelled video of a feature cache pooled to RTFM's 32 segments."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vad.errors import VadError
from vad.extract.cache import FeatureCache, FrameCountsMissing, FrameLayout
from vad.models.pooling import N_SEGMENTS, pool_segments
from vad.progress import progress_bar


@dataclass
class TrainingSet:
    normal_ids: list[str]
    abnormal_ids: list[str]
    normal: torch.Tensor  # [Nn, C, S, D] pooled bags
    abnormal: torch.Tensor  # [Na, C, S, D]
    n_snippets: dict[str, int]  # T of every video (maps segments back to frames)
    n_frames: dict[str, int]  # from the cache metadata, else 16 * T; absent for pooled segments without a frame count
    # the extraction precisions the cache entries record ("unknown" for imported features)
    feature_precisions: tuple[str, ...] = ()
    pooled: frozenset[str] = frozenset()  # videos whose rows are segments pooled over the whole video (Sultani's C3D)

    def layout(self, video_id: str) -> FrameLayout:
        """Which frames each of the video's rows covers (extract/cache.py FrameLayout)."""
        return FrameLayout(self.n_snippets[video_id], self.n_frames[video_id], pooled=video_id in self.pooled)

    @property
    def crops(self) -> int:
        return int(self.abnormal.shape[1])

    @property
    def feature_dim(self) -> int:
        return int(self.abnormal.shape[-1])


def load_training_set(cache: FeatureCache, labels: dict[str, int], segments: int = N_SEGMENTS, progress: bool = True) -> TrainingSet:
    """Pool every labelled video of the cache to [C, segments, D] (RTFM's 32 segments)."""
    pooled: dict[int, list[np.ndarray]] = {0: [], 1: []}
    ids: dict[int, list[str]] = {0: [], 1: []}
    n_snippets, n_frames, precisions, segmented = {}, {}, set(), set()
    for video_id, label in progress_bar(labels.items(), desc="loading features", unit="video", disable=not progress):
        features = cache.load(video_id)
        meta = cache.meta(video_id)
        n_snippets[video_id] = int(features.shape[0])
        try:
            n_frames[video_id] = cache.frame_layout(video_id, meta, features.shape[0]).n_frames
        except FrameCountsMissing:
            pass  # training needs no frames; --train-gt checks its videos' counts first
        if meta.get("segments") is not None:
            segmented.add(video_id)
        precisions.add(str(meta.get("precision", "unknown")))
        pooled[label].append(np.swapaxes(pool_segments(features, segments), 0, 1))  # [C, S, D]
        ids[label].append(video_id)
    for label, name in ((0, "normal"), (1, "abnormal")):
        if not ids[label]:
            raise VadError(f"the labels name no {name} video; training needs both classes")
    shapes = {p.shape[:1] + p.shape[2:] for p in pooled[0] + pooled[1]}
    if len(shapes) != 1:
        raise VadError(f"videos differ in crops or feature size: {sorted(shapes)}")
    return TrainingSet(
        normal_ids=ids[0], abnormal_ids=ids[1],
        normal=torch.from_numpy(np.stack(pooled[0])), abnormal=torch.from_numpy(np.stack(pooled[1])),
        n_snippets=n_snippets, n_frames=n_frames, feature_precisions=tuple(sorted(precisions)), pooled=frozenset(segmented),
    )
