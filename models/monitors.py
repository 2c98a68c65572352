"""What a training iteration is watched with: the detector's own state (live units, the
attention gate), eval-mode against train-mode scores and pre-sigmoid saturation, the spread of
scores inside abnormal videos, and pseudo-label precision against frame GT where it exists."""
from __future__ import annotations

from copy import deepcopy

import numpy as np
import torch

from vad.extract.cache import FrameLayout
from vad.models.data import TrainingSet
from vad.models.detector import ARMSDetector
from vad.models.pooling import segment_bounds
from vad.models.pseudo import UNLABELLED


@torch.no_grad()
def detector_monitors(model: ARMSDetector, abnormal: torch.Tensor, normal: torch.Tensor, batch_size: int = 256) -> dict:
    """What the network itself does on the training bags (eval mode).

    active_units: share of the 32-wide layer's units that fire (ReLU > 0) on at least one
    training segment; dead units never do. gate: the attention gate's BatchNorm weight and bias
    (0 at initialisation) and the norm of the gated branch against the per-snippet path's.
    """
    model.eval()
    bags = torch.cat([abnormal, normal]).flatten(0, 1)  # [N*C, S, D]
    fired = torch.zeros(model.config.fc_dim, dtype=torch.bool)
    path_norm = branch_norm = 0.0
    for i in range(0, bags.shape[0], batch_size):
        x = bags[i:i + batch_size]
        h = model.snippet_path(x)
        if model.config.attention:
            branch = model.attention_branch(h)
            path_norm += float(h.norm(dim=-1).sum())
            branch_norm += float(branch.norm(dim=-1).sum())
            h = h + branch
        fired |= (torch.relu(model.fc1(h)) > 0).flatten(0, 1).any(dim=0).cpu()
    result = {"active_units": float(fired.float().mean())}
    if model.config.attention:
        result["gate"] = {"weight_abs_mean": float(model.gate.weight.abs().mean()), "bias_abs_mean": float(model.gate.bias.abs().mean()),
                          "branch_to_path_norm": branch_norm / path_norm if path_norm else None}
    return result


SATURATED_LOGIT = 6.0  # |z| beyond this: sigmoid within 0.0025 of 0 or 1, where gradients vanish


@torch.no_grad()
def mode_monitors(model: ARMSDetector, abnormal: torch.Tensor, normal: torch.Tensor) -> dict:
    """What the loss saw against what scoring sees. The pseudo labels, the monitors and `vad score`
    use eval mode; the loss saw train mode: dropout on, and the attention gate's BatchNorm on batch
    statistics. `train_mode` scores a copy in train mode, abnormal and normal bags in each batch as
    the loss's batches mix them (the global RNG left untouched), so a detector that is only flat in
    eval mode shows. `pre_sigmoid`: eval-mode logits of the training bags, and the share saturated
    past |z| = 6."""
    bags = torch.cat([abnormal, normal])
    n, c, s, _ = bags.shape
    model.eval()
    logits = torch.cat([model.logits(bags[i:i + 256].flatten(0, 1)) for i in range(0, n, 256)]).float()
    eval_scores = torch.sigmoid(logits).view(n, c, s).mean(dim=1)[: len(abnormal)]
    twin = deepcopy(model).train()  # a copy: train-mode BatchNorm would move the model's running statistics
    train_scores, step = [], 64
    with torch.random.fork_rng(devices=[bags.device] if bags.device.type == "cuda" else []):  # dropout must not move training's RNG
        for i in range(0, len(abnormal), step):
            batch = torch.cat([abnormal[i:i + step], normal[i:i + step]])
            train_scores.append(twin(batch.flatten(0, 1)).float().view(len(batch), c, s).mean(dim=1)[: len(abnormal[i:i + step])])
    train_scores = torch.cat(train_scores)
    return {
        "train_mode": {"abnormal_video_mean": float(train_scores.mean()), "abnormal_within_video_std": float(train_scores.std(dim=1).mean()),
                       "mean_abs_difference_from_eval": float((train_scores - eval_scores).abs().mean())},
        "pre_sigmoid": {"mean": float(logits.mean()), "std": float(logits.std()),
                        "saturated_share": float((logits.abs() > SATURATED_LOGIT).float().mean())},
    }


def label_counts(pseudo: np.ndarray, normal_shape: tuple) -> dict:
    return {"abnormal_videos_1": int((pseudo == 1).sum()), "abnormal_videos_0": int((pseudo == 0).sum()),
            "unlabelled": int((pseudo == UNLABELLED).sum()), "normal_videos_0": int(np.prod(normal_shape))}


def score_monitors(abnormal_scores: np.ndarray, normal_scores: np.ndarray) -> dict:
    """A flat model raises whole abnormal videos; watch the spread inside them."""
    return {
        "abnormal_video_mean": float(abnormal_scores.mean()),
        "normal_video_mean": float(normal_scores.mean()),
        "abnormal_within_video_std": float(abnormal_scores.std(axis=1).mean()),
        "normal_within_video_std": float(normal_scores.std(axis=1).mean()),
        "abnormal_share_above_0.5": float((abnormal_scores > 0.5).mean()),
    }


def segment_truth(intervals: list[tuple[int, int]], n_snippets: int, n_frames: int, segments: int, pooled: bool = False) -> np.ndarray:
    """1 where at least half of a pooled segment's frames lie in a GT interval.

    The frames of the rows (16-frame snippets, or with `pooled` segments pooled over the whole video)
    come from FrameLayout, as the evaluation's."""
    frames = np.zeros(n_frames, dtype=np.float64)
    for start, end in intervals:
        frames[start:end] = 1
    frame_of = FrameLayout(n_snippets, n_frames, pooled=pooled).bounds()  # row r: frames frame_of[r] .. frame_of[r+1]-1
    bounds = segment_bounds(n_snippets, segments)
    truth = np.zeros(segments, dtype=np.int8)
    for i in range(segments):
        lo = min(bounds[i], n_snippets - 1)
        hi = max(bounds[i + 1], lo + 1)
        part = frames[frame_of[lo]: frame_of[hi]]
        truth[i] = int(part.size > 0 and part.mean() >= 0.5)
    return truth


def pseudo_label_precision(pseudo: np.ndarray, data: TrainingSet, train_gt: dict, segments: int) -> dict:
    """Table VI: how many pseudo labels of the abnormal training videos agree with frame GT.

    Only abnormal videos that have GT intervals count (a GT file that lacks a video says nothing
    about it). precision: all labelled segments; abnormal/normal: segments labelled 1 / 0;
    abnormal_recall: the GT-abnormal segments that are labelled 1.
    """
    hits = {0: [0, 0], 1: [0, 0]}
    videos = abnormal_segments = 0
    for row, video_id in zip(pseudo, data.abnormal_ids):
        if not train_gt.get(video_id):
            continue
        videos += 1
        layout = data.layout(video_id)
        truth = segment_truth(train_gt[video_id], layout.n_rows, layout.n_frames, segments, pooled=layout.pooled)
        abnormal_segments += int(truth.sum())
        for label in (0, 1):
            chosen = row == label
            hits[label][0] += int((truth[chosen] == label).sum())
            hits[label][1] += int(chosen.sum())
    ratio = lambda a, b: a / b if b else None
    return {
        "videos": videos,
        "precision": ratio(hits[0][0] + hits[1][0], hits[0][1] + hits[1][1]),
        "abnormal_precision": ratio(*hits[1]),
        "normal_precision": ratio(*hits[0]),
        "abnormal_recall": ratio(hits[1][0], abnormal_segments),  # GT-abnormal segments labelled 1
    }
