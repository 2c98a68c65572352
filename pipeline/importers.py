"""Features and ground truth that someone else made, turned into our cache and GT CSV.

Features: RTFM/ARMS `.npy` [T,10,2048], plain [T,D] arrays, Sultani's C3D text files [32,4096],
and list files (`@list.txt`, RTFM's `*.list`) naming them. GT: UCF-Crime's
Temporal_Anomaly_Annotation.txt, RTFM's gt-*.npy with its test list, XD-Violence's
annotations.txt, and folders of per-video frame masks (ShanghaiTech's test_frame_mask).
"""
from __future__ import annotations

import logging
import math
import ntpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from vad.errors import VadError
from vad.extract.cache import FeatureCache, FrameLayout
from vad.extract.preprocess import CLIP_LEN

log = logging.getLogger("vad")

FEATURE_FORMATS = ("auto", "rtfm", "npy", "sultani")
CROP_SUFFIX = re.compile(r"^(?P<video>.+)__(?P<crop>\d+)$")  # XD-Violence: one file per crop, name__k


class ImportError_(VadError):
    """Input that cannot be imported; the message names the file (and line)."""


# -- names --------------------------------------------------------------------------------
def base_name(entry: str) -> str:
    """The file name of a path written on any system (RTFM's lists hold Windows and Linux paths)."""
    return ntpath.basename(entry) if "\\" in entry else PurePosixPath(entry).name


def strip_suffixes(stem: str, suffixes: Sequence[str]) -> str:
    """Remove each given suffix once, in order, where the name ends with it (--strip-suffix)."""
    for suffix in suffixes:
        if suffix and stem.endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
    return stem


def video_id_of(entry: str, suffixes: Sequence[str] = ()) -> str:
    name = base_name(entry)
    stem = name[: -len(Path(name).suffix)] if Path(name).suffix else name
    return strip_suffixes(stem, suffixes)


def read_list(path: Path, root: Path | None = None) -> list[Path]:
    """Entries of a list file; a path that does not exist here is looked up by its file name
    in `root` (default: the list's own folder), since published lists name their authors' disks."""
    try:
        lines = path.read_text().splitlines()
    except (FileNotFoundError, UnicodeDecodeError, IsADirectoryError) as exc:
        raise ImportError_(f"{path}: cannot read list ({exc.__class__.__name__})") from None
    folder = root or path.parent
    found = []
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry:
            continue
        candidate = Path(entry)
        if not candidate.is_file():
            candidate = folder / base_name(entry)
        if not candidate.is_file():
            raise ImportError_(f"{path}:{number}: {entry} not found (also looked for {folder / base_name(entry)})")
        found.append(candidate)
    return found


def expand_inputs(inputs: Sequence[str], root: Path | None = None) -> list[Path]:
    """FILE, @list or *.list -> feature files, in order."""
    files: list[Path] = []
    for item in inputs:
        if item.startswith("@"):
            files.extend(read_list(Path(item[1:]), root))
        elif item.endswith(".list"):
            files.extend(read_list(Path(item), root))
        else:
            path = Path(item)
            if not path.is_file():
                raise ImportError_(f"{item}: no such file")
            files.append(path)
    return files


# -- features -----------------------------------------------------------------------------
def detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if path.suffix == ".npy":
        return "npy"
    if path.suffix == ".txt":
        return "sultani"
    raise ImportError_(f"{path}: cannot tell the format from the extension; give --format")


def read_features(path: Path, fmt: str) -> np.ndarray:
    """One file -> float32 [T, C, D]."""
    fmt = detect_format(path, fmt)
    if fmt == "sultani":
        try:
            array = np.loadtxt(path, dtype=np.float32, ndmin=2)
        except ValueError as exc:
            raise ImportError_(f"{path}: not a C3D text feature file ({exc})") from None
        if array.shape[0] != 32:
            raise ImportError_(f"{path}: Sultani C3D files hold 32 segments, got shape {array.shape}")
        return array[:, None, :]
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ImportError_(f"{path}: not a readable .npy array ({exc})") from None
    if fmt == "rtfm" and array.ndim != 3:
        raise ImportError_(f"{path}: RTFM features are [T, crops, D], got shape {array.shape}")
    if array.ndim == 2:
        array = array[:, None, :]
    if array.ndim != 3 or 0 in array.shape or not np.issubdtype(array.dtype, np.floating):
        raise ImportError_(f"{path}: expected a float [T, D] or [T, crops, D] array, got {array.dtype} {array.shape}")
    if not np.isfinite(array).all():
        raise ImportError_(f"{path}: features contain NaN or infinity")
    return np.ascontiguousarray(array, dtype=np.float32)


@dataclass
class FeatureImportReport:
    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, error)
    counted: list[str] = field(default_factory=list)  # videos whose entry holds a frame count from frame_counts


def group_files(files: Sequence[Path], suffixes: Sequence[str], group_crops: bool) -> dict[str, list[Path]]:
    """video id -> its files (several only with group_crops: XD's name__0 .. name__4)."""
    groups: dict[str, dict[int, Path]] = {}
    for path in files:
        video_id, crop = video_id_of(str(path), suffixes), 0
        if group_crops:
            match = CROP_SUFFIX.match(video_id)
            if match is None:
                raise ImportError_(f"{path}: --group-crops expects names ending in __<crop>, e.g. name__0.npy")
            video_id, crop = match["video"], int(match["crop"])
        crops = groups.setdefault(video_id, {})
        if crop in crops:
            raise ImportError_(f"{path}: video id {video_id!r} (crop {crop}) also comes from {crops[crop]}; see --strip-suffix")
        crops[crop] = path
    return {video_id: [crops[c] for c in sorted(crops)] for video_id, crops in groups.items()}


def import_features(
    inputs: Sequence[str], cache: FeatureCache, *, fmt: str = "auto", suffixes: Sequence[str] = (),
    backbone: str = "external", group_crops: bool = False, overwrite: bool = False, root: Path | None = None,
    frame_counts: Mapping[str, int] | None = None, progress_wrap=lambda items: items,
) -> FeatureImportReport:
    """Write every input video into the cache; a bad file is recorded and the batch goes on.

    frame_counts (read_frame_counts): video id -> its frames, recorded as `n_frames` of the videos
    imported and of those already in the cache (their metadata only), so segment-pooled features
    (Sultani's) map to the video's real frames (FrameLayout).
    """
    if fmt not in FEATURE_FORMATS:
        raise ImportError_(f"unknown format {fmt!r}; choose from {', '.join(FEATURE_FORMATS)}")
    groups = group_files(expand_inputs(inputs, root), suffixes, group_crops)
    counts = frame_counts or {}
    report = FeatureImportReport()
    config = cache.config if cache.exists() else None
    for video_id, paths in progress_wrap(list(groups.items())):
        if cache.is_done(video_id) and not overwrite:
            report.skipped.append(video_id)
            if video_id in counts:
                try:
                    meta = cache.meta(video_id)
                    _check_frame_count(paths[0], video_id, counts[video_id], cache.load(video_id, mmap=True).shape[0], meta.get("segments"))
                    cache.record_frame_count(video_id, counts[video_id])
                    report.counted.append(video_id)
                except VadError as exc:
                    cache.record_failure(video_id, str(paths[0]), str(exc))
                    report.failed.append((str(paths[0]), str(exc)))
                    log.error("%s", exc)
            continue
        try:
            parts = [read_features(p, fmt) for p in paths]
            if len({p.shape[0] for p in parts}) != 1:
                raise ImportError_(f"{paths[0]}: crops of {video_id!r} differ in length: {[p.shape[0] for p in parts]}")
            features = np.concatenate(parts, axis=1)
            used = detect_format(paths[0], fmt)
            wanted = {"backbone": backbone, "feature_dim": int(features.shape[2]), "crops": int(features.shape[1]),
                      "clip_len": CLIP_LEN, "imported_format": used}
            if config is None:
                config = cache.ensure_config(wanted)
            elif (config.get("feature_dim"), config.get("crops")) != (wanted["feature_dim"], wanted["crops"]):
                raise ImportError_(f"{paths[0]}: shape {features.shape} does not fit the cache's "
                                   f"[T, {config.get('crops')}, {config.get('feature_dim')}]")
            meta = {"source": [str(p) for p in paths] if len(paths) > 1 else str(paths[0]), "imported_format": used, "partial": False}
            if used == "sultani":
                meta["segments"] = 32  # already pooled to 32 segments: not per 16-frame snippet
            if video_id in counts:
                _check_frame_count(paths[0], video_id, counts[video_id], features.shape[0], meta.get("segments"))
                meta["n_frames"] = counts[video_id]
            cache.write(video_id, features, meta)
            report.imported.append(video_id)
            if video_id in counts:
                report.counted.append(video_id)
        except ImportError_ as exc:
            cache.record_failure(video_id, str(paths[0]), str(exc))
            report.failed.append((str(paths[0]), str(exc)))
            log.error("%s", exc)
    return report


def _check_frame_count(path: Path, video_id: str, n_frames: int, n_rows: int, segments: int | None) -> None:
    try:
        FrameLayout(n_rows, n_frames, pooled=segments is not None)
    except ValueError as exc:
        raise ImportError_(f"{path}: the frame count {n_frames} of {video_id!r} (--frame-counts) does not fit its features ({exc})") from None


def export_segments(cache: FeatureCache, out: Path, segments: int = 32, progress_wrap=lambda items: items) -> int:
    """Write each video's pooled training view [segments, C, D] as OUT/<id>.npy (docs/method.md (Training))."""
    from vad.files import atomic_save_npy
    from vad.models.pooling import pool_segments

    ids = cache.video_ids()
    for video_id in progress_wrap(ids):
        atomic_save_npy(out / f"{video_id}.npy", pool_segments(cache.load(video_id), segments))
    return len(ids)


# -- ground truth ---------------------------------------------------------------------------
def mask_to_intervals(mask: np.ndarray) -> list[tuple[int, int]]:
    """0/1 frames -> [(start, end)] runs of 1, end exclusive."""
    mask = np.asarray(mask).astype(bool).astype(np.int8)
    edges = np.diff(np.concatenate([[0], mask, [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def read_frame_counts(paths: Sequence[Path], suffixes: Sequence[str] = ()) -> dict[str, int]:
    """Frame counts from `video,n_frames` CSVs or UCF's test_*v2.txt lists
    ("Arrest/Arrest039_x264.mp4|15836|[7215, 10335]" and "Normal/..._x264.mp4 876 -1")."""
    counts: dict[str, int] = {}
    for path in paths:
        try:
            lines = path.read_text().splitlines()
        except (FileNotFoundError, UnicodeDecodeError, IsADirectoryError) as exc:
            raise ImportError_(f"{path}: cannot read frame counts ({exc.__class__.__name__})") from None
        for number, line in enumerate(lines, start=1):
            line = line.strip()
            if not line or line.lower().replace(" ", "") == "video,n_frames":
                continue
            fields = line.split("|") if "|" in line else line.split(",") if "," in line else line.split()
            try:
                name, count = fields[0].strip(), int(fields[1])
            except (IndexError, ValueError):
                raise ImportError_(f"{path}:{number}: expected 'video,n_frames' or UCF's 'name|frames|[...]' / 'name frames -1'") from None
            if count < 1:
                raise ImportError_(f"{path}:{number}: frame count {count} of {name!r} is not a whole number of at least 1")
            counts[video_id_of(name, suffixes) if "." in base_name(name) else strip_suffixes(base_name(name), suffixes)] = count
    return counts


def import_ucf_gt(path: Path, suffixes: Sequence[str] = (), frame_counts: Mapping[str, int] | None = None) -> dict[str, list[tuple[int, int]]]:
    """Temporal_Anomaly_Annotation.txt: `name class s1 e1 s2 e2`, -1 = no interval.

    Ends are read as exclusive (docs/method.md (Evaluation)). Every test video is returned, normal ones with
    no interval. With frame counts, an interval past the end of its video is an error.
    """
    gt: dict[str, list[tuple[int, int]]] = {}
    for number, line in enumerate(_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise ImportError_(f"{path}:{number}: expected 'name class start1 end1 start2 end2', got {len(fields)} fields")
        video_id = video_id_of(fields[0], suffixes)
        if video_id in gt:
            raise ImportError_(f"{path}:{number}: duplicate video {video_id!r}")
        try:
            values = [int(v) for v in fields[2:]]
        except ValueError:
            raise ImportError_(f"{path}:{number}: frame numbers must be integers") from None
        intervals = []
        for start, end in (values[0:2], values[2:4]):
            if start == -1 and end == -1:
                continue
            intervals.append(_check_interval(path, number, video_id, start, end, frame_counts))
        gt[video_id] = intervals
    return gt


def import_xd_gt(path: Path, suffixes: Sequence[str] = (), frame_counts: Mapping[str, int] | None = None) -> dict[str, list[tuple[int, int]]]:
    """XD-Violence annotations.txt: `name s1 e1 [s2 e2 ...]` per abnormal test video (ends exclusive)."""
    gt: dict[str, list[tuple[int, int]]] = {}
    for number, line in enumerate(_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 3 or len(fields) % 2 == 0:
            raise ImportError_(f"{path}:{number}: expected 'name start1 end1 [start2 end2 ...]'")
        video_id = strip_suffixes(fields[0], suffixes)
        if video_id in gt:
            raise ImportError_(f"{path}:{number}: duplicate video {video_id!r}")
        try:
            values = [int(v) for v in fields[1:]]
        except ValueError:
            raise ImportError_(f"{path}:{number}: frame numbers must be integers") from None
        gt[video_id] = [_check_interval(path, number, video_id, s, e, frame_counts) for s, e in zip(values[::2], values[1::2])]
    return gt


def import_rtfm_gt(gt_path: Path, list_path: Path, frame_counts: Mapping[str, int], suffixes: Sequence[str] = ()) -> dict[str, list[tuple[int, int]]]:
    """RTFM's gt-*.npy: frame GT of the test list's videos concatenated, each padded to
    16*ceil(n/16) frames. Split back with each video's frame count; intervals are cut at n.

    A video without a known count can only be skipped if it and every later one are all-normal
    (RTFM lists abnormal videos first), which is checked.
    """
    try:
        gt = np.load(gt_path, allow_pickle=False)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise ImportError_(f"{gt_path}: cannot read a GT array ({exc.__class__.__name__})") from None
    if gt.ndim != 1:
        raise ImportError_(f"{gt_path}: expected a 1-D frame array, got shape {gt.shape}")
    entries = [line.strip() for line in _lines(list_path) if line.strip()]
    result: dict[str, list[tuple[int, int]]] = {}
    position = 0
    for number, entry in enumerate(entries, start=1):
        video_id = video_id_of(entry, suffixes)
        if video_id not in frame_counts:
            rest = gt[position:]
            if rest.any():
                raise ImportError_(f"{list_path}:{number}: no frame count for {video_id!r}, and abnormal frames follow; "
                                   "give --frame-counts or --cache")
            log.info("%s: no frame counts from %s on; the rest of the GT is all normal", list_path, video_id)
            for later in entries[number - 1:]:
                result[video_id_of(later, suffixes)] = []
            return result
        n = int(frame_counts[video_id])
        padded = CLIP_LEN * math.ceil(n / CLIP_LEN)
        if position + padded > len(gt):
            raise ImportError_(f"{list_path}:{number}: {video_id!r} ({n} frames) runs past the end of {gt_path} ({len(gt)} frames)")
        result[video_id] = mask_to_intervals(gt[position:position + n])
        position += padded
    if position != len(gt):
        raise ImportError_(f"{gt_path}: {len(gt)} frames, but the list's videos account for {position}: wrong list or frame counts")
    return result


def import_mask_folder(folder: Path, suffixes: Sequence[str] = ()) -> tuple[dict[str, list[tuple[int, int]]], dict[str, int]]:
    """A folder of <video>.npy 0/1 frame masks (ShanghaiTech's test_frame_mask) -> GT and frame counts."""
    if not folder.is_dir():
        raise ImportError_(f"{folder}: not a folder of .npy masks")
    gt, counts = {}, {}
    for path in sorted(folder.glob("*.npy")):
        try:
            mask = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ImportError_(f"{path}: not a readable mask ({exc.__class__.__name__})") from None
        if mask.ndim != 1:
            raise ImportError_(f"{path}: expected a 1-D frame mask, got shape {mask.shape}")
        video_id = strip_suffixes(path.stem, suffixes)
        gt[video_id], counts[video_id] = mask_to_intervals(mask), int(mask.size)
    if not gt:
        raise ImportError_(f"{folder}: no .npy masks")
    return gt, counts


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except (FileNotFoundError, UnicodeDecodeError, IsADirectoryError) as exc:
        raise ImportError_(f"{path}: cannot read ({exc.__class__.__name__})") from None


def _check_interval(path: Path, number: int, video_id: str, start: int, end: int, frame_counts: Mapping[str, int] | None) -> tuple[int, int]:
    if start < 0 or end <= start:
        raise ImportError_(f"{path}:{number}: interval [{start}, {end}) of {video_id!r} is empty or reversed")
    n = None if frame_counts is None else frame_counts.get(video_id)
    if n is not None and (start >= n or end > n + CLIP_LEN):
        raise ImportError_(f"{path}:{number}: interval [{start}, {end}) of {video_id!r} lies outside its {n} frames")
    if n is not None and end > n:
        # UCF-Crime's own annotation ends 1 frame past the counted frames of 2 videos
        # (Explosion033, Shooting015): within one snippet, clip instead of refusing the file.
        log.warning("%s:%d: interval [%d, %d) of %r clipped to its %d frames", path, number, start, end, video_id, n)
        end = n
    return start, end
