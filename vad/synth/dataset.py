"""Assembling a dataset: many clips over a few cameras, written as videos plus labels, GT and provenance CSVs."""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vad.synth.config import ClipSpec, Interval, SceneConfig
from vad.synth.encode import write_clip
from vad.synth.kinds import ANOMALIES
from vad.synth.plan import plan_clip
from vad.synth.render import render_plan

log = logging.getLogger("vad")


@dataclass(frozen=True)
class ClipRecord:
    """One generated video."""

    video: str  # id: path under videos/ without extension, '/'-separated (e.g. "abnormal/fight_003")
    path: Path
    label: int  # 0 normal, 1 abnormal
    kind: str  # "none" or the anomaly name
    scene_id: int
    seed: int
    n_frames: int
    fps: int
    gt: tuple[Interval, ...]  # abnormal frame intervals [start, end)


@dataclass
class DatasetInfo:
    """What `make_dataset` wrote."""

    root: Path
    videos_dir: Path  # the folder to hand to `vad extract`; ids are relative to it
    labels_csv: Path  # video,label
    gt_csv: Path  # video,start_frame,end_frame (end exclusive), one row per interval
    clips_csv: Path  # video,label,kind,scene_id,seed,n_frames,fps: how each clip was made
    clips: list[ClipRecord]


def make_dataset(out_dir: str | Path, n_normal: int, n_abnormal: int, *, seed: int = 0, size: tuple[int, int] = (320, 240),
                 n_frames: int | tuple[int, int] = (96, 240), fps: int = 25, n_scenes: int = 4,
                 kinds: tuple[str, ...] | None = None, codec: str = "libx264", progress: bool = False) -> DatasetInfo:
    """Render and write a dataset: videos/{normal,abnormal}/*.mp4 plus labels.csv, gt.csv and clips.csv.

    Clips are spread round-robin over `n_scenes` cameras, normal and abnormal alike, so that a
    detector cannot tell the classes apart by the scene; abnormal clips cycle through `kinds`
    (default: every registered anomaly). `n_frames` is a fixed length or an inclusive range drawn
    per clip. Scene layouts follow from `seed`, so different seeds show different places.
    """
    from vad.progress import progress_bar

    kinds = tuple(kinds) if kinds else tuple(ANOMALIES)
    unknown = [k for k in kinds if k not in ANOMALIES]
    if unknown:
        raise ValueError(f"unknown anomaly kinds {unknown}; known: {', '.join(ANOMALIES)}")
    if n_normal < 0 or n_abnormal < 0 or n_scenes < 1:
        raise ValueError("n_normal and n_abnormal must be >= 0 and n_scenes >= 1")
    root = Path(out_dir)
    videos_dir = root / "videos"
    rng = np.random.default_rng([seed, 0xDA7A])
    scenes = [SceneConfig(scene_id=int(np.random.SeedSequence([seed, k]).generate_state(1)[0]), width=size[0], height=size[1])
              for k in range(n_scenes)]
    jobs = [(0, i, "none", f"normal/normal_{i:03d}") for i in range(n_normal)]
    jobs += [(1, i, kinds[i % len(kinds)], f"abnormal/{kinds[i % len(kinds)]}_{i:03d}") for i in range(n_abnormal)]
    clips = []
    for label, i, kind, video in progress_bar(jobs, desc="synth", unit="clip", disable=not progress):
        length = n_frames if isinstance(n_frames, int) else int(rng.integers(n_frames[0], n_frames[1] + 1))
        clip_seed = int(np.random.SeedSequence([seed, label, i]).generate_state(1)[0])
        spec = ClipSpec(scene=scenes[i % n_scenes], seed=clip_seed, n_frames=length, fps=fps, anomaly=kind)
        plan = plan_clip(spec)
        path = write_clip(videos_dir / f"{video}.mp4", render_plan(plan), fps=fps, codec=codec)
        clips.append(ClipRecord(video, path, label, kind, spec.scene.scene_id, clip_seed, length, fps, tuple(plan.gt)))

    root.mkdir(parents=True, exist_ok=True)
    info = DatasetInfo(root, videos_dir, root / "labels.csv", root / "gt.csv", root / "clips.csv", clips)
    _write_csv(info.labels_csv, ["video", "label"], [(c.video, c.label) for c in clips])
    _write_csv(info.gt_csv, ["video", "start_frame", "end_frame"], [(c.video, s, e) for c in clips for s, e in c.gt])
    _write_csv(info.clips_csv, ["video", "label", "kind", "scene_id", "seed", "n_frames", "fps"],
               [(c.video, c.label, c.kind, c.scene_id, c.seed, c.n_frames, c.fps) for c in clips])
    log.info("synth: %d normal + %d abnormal clips in %s", n_normal, n_abnormal, videos_dir)
    return info


def _write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    tmp.replace(path)
