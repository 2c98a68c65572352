"""The labels and ground-truth CSV files (`video,label` and `video,start_frame,end_frame`), read strictly.

labels: `video,label` (label 0/1 or normal/abnormal). GT: `video,start_frame,end_frame`, end
exclusive, one row per abnormal interval; videos without rows are all-normal. Every problem is
one line naming the file and the line.
"""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from vad.errors import VadError
from vad.files import atomic_write_bytes

LABEL_VALUES = {"0": 0, "1": 1, "normal": 0, "abnormal": 1}


class TableError(VadError):
    """A malformed labels or GT file; the message is '<file>:<line>: what'."""


def _rows(path: Path, header: tuple[str, ...]) -> Iterable[tuple[int, list[str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TableError(f"{path}: no such file") from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise TableError(f"{path}: not a text CSV file ({exc})") from None
    lines = csv.reader(io.StringIO(text))
    first = next(lines, None)
    if first is None or tuple(c.strip().lower() for c in first) != header:
        raise TableError(f"{path}:1: expected the header '{','.join(header)}', got {','.join(first or []) or 'an empty file'!r}")
    for number, row in enumerate(lines, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise TableError(f"{path}:{number}: expected {len(header)} fields ({','.join(header)}), got {len(row)}")
        yield number, [c.strip() for c in row]


def read_labels(path: str | os.PathLike, known_ids: Iterable[str] | None = None) -> dict[str, int]:
    """video id -> 0/1, in file order. known_ids: the cache's ids; others are an error."""
    path = Path(path)
    known = None if known_ids is None else set(known_ids)
    labels: dict[str, int] = {}
    for number, (video, label) in _rows(path, ("video", "label")):
        if not video:
            raise TableError(f"{path}:{number}: empty video id")
        if video in labels:
            raise TableError(f"{path}:{number}: duplicate video {video!r}")
        value = LABEL_VALUES.get(label.lower())
        if value is None:
            raise TableError(f"{path}:{number}: label {label!r} of {video!r} is not 0, 1, normal or abnormal")
        if known is not None and video not in known:
            raise TableError(f"{path}:{number}: unknown video {video!r} (not in the feature cache)")
        labels[video] = value
    if not labels:
        raise TableError(f"{path}: no videos listed")
    return labels


def read_gt(path: str | os.PathLike, known_ids: Iterable[str] | None = None,
            n_frames: Mapping[str, int] | None = None) -> dict[str, list[tuple[int, int]]]:
    """video id -> sorted [(start, end)] abnormal intervals, end exclusive.

    known_ids: ids that may appear (the cache); n_frames: where given, an interval must end
    within the video.
    """
    path = Path(path)
    known = None if known_ids is None else set(known_ids)
    gt: dict[str, list[tuple[int, int]]] = {}
    for number, (video, start_text, end_text) in _rows(path, ("video", "start_frame", "end_frame")):
        try:
            start, end = int(start_text), int(end_text)
        except ValueError:
            raise TableError(f"{path}:{number}: frames must be integers, got {start_text!r}, {end_text!r}") from None
        if known is not None and video not in known:
            raise TableError(f"{path}:{number}: unknown video {video!r} (not in the feature cache)")
        if start < 0 or end <= start:
            raise TableError(f"{path}:{number}: interval [{start}, {end}) of {video!r} is empty or reversed (end is exclusive)")
        if n_frames is not None and video in n_frames and end > n_frames[video]:
            raise TableError(f"{path}:{number}: interval [{start}, {end}) of {video!r} ends after its {n_frames[video]} frames")
        intervals = gt.setdefault(video, [])
        if (start, end) in intervals:
            raise TableError(f"{path}:{number}: duplicate interval [{start}, {end}) of {video!r}")
        intervals.append((start, end))
    return {video: sorted(intervals) for video, intervals in gt.items()}


def format_gt(gt: Mapping[str, Iterable[tuple[int, int]]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["video", "start_frame", "end_frame"])
    for video, intervals in gt.items():
        for start, end in intervals:
            writer.writerow([video, int(start), int(end)])
    return out.getvalue()


def write_gt(path: str | os.PathLike, gt: Mapping[str, Iterable[tuple[int, int]]]) -> None:
    atomic_write_bytes(Path(path), format_gt(gt).encode())


def write_labels(path: str | os.PathLike, labels: Mapping[str, int]) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["video", "label"])
    for video, label in labels.items():
        writer.writerow([video, int(label)])
    atomic_write_bytes(Path(path), out.getvalue().encode())
