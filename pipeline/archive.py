"""The archive summary of a `vad score` run: summary.csv, events.csv and the archive page.

Every `vad score ... --out DIR` run writes

- DIR/summary.csv, one row per video (SUMMARY_HEADER), failed videos included with status
  `failed: <reason>`, and
- DIR/events.csv, one row per event (EVENTS_HEADER): a run of frames scoring strictly above
  the threshold (`--threshold`, else the report's 0.5; pipeline/plot.py intervals_above), end
  frame exclusive,

both sorted by video score, highest first (failed videos last, in input order; ties in input
order). With `--html FOLDER`, FOLDER/index.html is the archive page (template archive.html):
the same rows, sortable by any column, filterable by id text and minimum score, 100 rows a
page, each id linking to the video's report page; it works offline, the rows embedded as JSON.

Memory stays bounded whatever the archive's size: each finished video appends one small record
(its summary, its events, a 120-point sparkline for the page; never its curve) to a temporary
file, and memory keeps only (score, position, offset) per video. At the end the keys are sorted
and the records read back one at a time, in that order, into the files, each written atomically.
"""
from __future__ import annotations

import csv
import html
import io
import json
import logging
import math
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np

from vad.errors import ConfigError, RunFailure
from vad.files import atomic_write
from vad.pipeline.plot import intervals_above

log = logging.getLogger("vad")

SUMMARY_HEADER = ("id", "video_score", "n_frames", "duration_s", "n_events", "max_event_s", "top_event_start_s", "status")
EVENTS_HEADER = ("id", "start_frame", "end_frame", "start_s", "end_s", "peak_score", "peak_s")
ARCHIVE_FILES = ("summary.csv", "events.csv")
TEMPLATE = "archive.html"
PAGE_SIZE = 100  # rows a page of the archive page shows
# the page's columns: key, heading, numeric; the embedded rows are arrays in this order, then href, sparkline
PAGE_COLUMNS = (("id", "video", False), ("duration_s", "duration", True), ("video_score", "video score", True),
                ("n_events", "events", True), ("max_event_s", "longest event", True), ("top_event_start_s", "top event at", True),
                ("n_frames", "frames", True), ("status", "status", False))


def _num(value, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def video_record(video_id: str, frame_scores, fps: float, video_score: float, threshold: float, *, partial: bool = False,
                 page: str | None = None) -> dict:
    """One video's record: its summary row, its events and its sparkline, from its frame scores."""
    from vad.pipeline.report import sparkline_points

    scores = np.asarray(frame_scores, dtype=np.float64).ravel()
    events = []
    for start, end in intervals_above(scores, threshold):
        peak_frame = start + int(np.argmax(scores[start:end]))
        events.append([start, end, round(float(scores[peak_frame]), 6), peak_frame])
    n_frames = len(scores)
    longest = max(events, key=lambda e: e[1] - e[0], default=None)
    top = max(events, key=lambda e: e[2], default=None)  # the event with the highest peak (the first of equals)
    score = float(video_score)
    return {"id": str(video_id), "video_score": score if math.isfinite(score) else None, "n_frames": n_frames, "fps": float(fps),
            "duration_s": n_frames / fps, "n_events": len(events),
            "max_event_s": None if longest is None else (longest[1] - longest[0]) / fps,
            "top_event_start_s": None if top is None else top[0] / fps, "status": "partial" if partial else "ok", "page": page,
            "events": events, "spark": list(sparkline_points(scores))}


def failed_record(video_id: str, reason: str) -> dict:
    return {"id": str(video_id), "video_score": None, "n_frames": None, "fps": None, "duration_s": None, "n_events": None,
            "max_event_s": None, "top_event_start_s": None, "status": f"failed: {reason}", "page": None, "events": [], "spark": []}


def summary_row(record: dict) -> list[str]:
    return [record["id"], _num(record["video_score"], 6), "" if record["n_frames"] is None else str(record["n_frames"]),
            _num(record["duration_s"], 3), "" if record["n_events"] is None else str(record["n_events"]), _num(record["max_event_s"], 3),
            _num(record["top_event_start_s"], 3), record["status"]]


def event_rows(record: dict) -> Iterator[list[str]]:
    fps = record["fps"]
    for start, end, peak, peak_frame in record["events"]:
        yield [record["id"], str(start), str(end), f"{start / fps:.3f}", f"{end / fps:.3f}", f"{peak:.6f}", f"{peak_frame / fps:.3f}"]


class Archive:
    """Collects one record per finished video in a temporary file; `finish` writes the sorted files.

    `out`: the folder of summary.csv and events.csv (None: not written); `index`: the archive
    page's path (None: no page), whose links to report pages are relative to its folder."""

    def __init__(self, threshold: float, *, out: Path | None = None, index: Path | None = None, title: str = "vad report"):
        self.threshold, self.out, self.index, self.title = float(threshold), out, index, title
        self._file = tempfile.TemporaryFile()  # unnamed: gone whatever happens
        self._keys: list[tuple[float, int, int]] = []  # (-score, position, offset): failed and NaN scores sort last
        self.problems: list[str] = []

    def _append(self, record: dict) -> None:
        if self.problems:
            return
        try:
            offset = self._file.seek(0, io.SEEK_END)
            self._file.write(json.dumps(record, allow_nan=False, separators=(",", ":")).encode() + b"\n")
            self._file.flush()
        except OSError as exc:  # a full disk: the run goes on, the summary is not written (raise_problems says so)
            self.problems.append(f"cannot keep its records in a temporary file ({exc.strerror or exc}); it is not written")
            log.error("vad: the archive summary: %s", self.problems[-1])
            return
        score = record["video_score"]
        self._keys.append((math.inf if score is None else -score, len(self._keys), offset))

    def add(self, curve, page: str | Path | None = None, video_id: str | None = None) -> None:
        """A scored video (a pipeline/score.py Curve) and its report page, if one was written."""
        self._append(video_record(video_id or curve.path.stem, curve.frame_scores, curve.fps, curve.video_score, self.threshold,
                                  partial=bool(curve.partial), page=None if page is None else self._link(Path(page))))

    def add_failure(self, video, reason: str) -> None:
        self._append(failed_record(id_of(video), reason))

    def _link(self, page: Path) -> str | None:
        if self.index is None:
            return None
        from vad.pipeline.report import href

        try:
            return href(page.resolve().relative_to(self.index.parent.resolve()).as_posix())
        except ValueError:
            return page.resolve().as_uri()

    def records(self) -> Iterator[dict]:
        """The records, highest video score first."""
        for _, _, offset in sorted(self._keys):
            self._file.seek(offset)
            yield json.loads(self._file.readline())

    def finish(self) -> dict[str, Path]:
        """Write summary.csv and events.csv (with `out`) and the page (with `index`); returns what was written.
        A file that cannot be written is logged as one line and kept in `problems`; the others are still written."""
        jobs = []
        if self.out is not None:
            jobs += [("summary", lambda: write_csv(self.out / "summary.csv", SUMMARY_HEADER, (summary_row(r) for r in self.records()))),
                     ("events", lambda: write_csv(self.out / "events.csv", EVENTS_HEADER,
                                                  (row for r in self.records() for row in event_rows(r))))]
        if self.index is not None:
            jobs.append(("index", lambda: write_page(self.records(), self.index, threshold=self.threshold, title=self.title)))
        written = {}
        try:
            for key, job in [] if self.problems else jobs:
                try:
                    written[key] = job()
                except RunFailure as exc:
                    log.error("vad: %s", exc)
                    self.problems.append(str(exc))
        finally:
            try:
                self._file.close()
            except OSError:  # what a full disk left in its buffer: the records are no longer needed
                pass
        return written

    def raise_problems(self) -> None:
        """After the run's own failures: exit 1 when a file of the summary could not be written."""
        if self.problems:
            raise RunFailure(f"the archive summary is incomplete: {self.problems[0]}")


def write_csv(path: Path, header: Iterable[str], rows: Iterable[list[str]]) -> Path:
    def write(handle: BinaryIO) -> None:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        text.flush()
        text.detach()

    try:
        atomic_write(path, write)
    except OSError as exc:
        raise RunFailure(f"{path}: cannot write the archive summary ({exc.strerror or exc})") from None
    return path


def _page_row(record: dict) -> list:
    def r(value, digits):
        return None if value is None else round(value, digits)

    return [record["id"], r(record["duration_s"], 3), r(record["video_score"], 6), record["n_events"], r(record["max_event_s"], 3),
            r(record["top_event_start_s"], 3), record["n_frames"], record["status"], record.get("page"),
            [round(v, 3) for v in record.get("spark", [])]]


def write_page(records: Iterable[dict], path: Path, *, threshold: float, title: str = "vad report") -> Path:
    """The archive page: the records (in the order given) embedded as JSON, streamed one row at a time."""
    from vad.pipeline.report import _template, fill, script_json

    columns = [{"key": k, "label": label, "num": num} for k, label, num in PAGE_COLUMNS]
    token = "\x00rows\x00"
    text = fill(_template(TEMPLATE), {"title": html.escape(title), "config": script_json(
        {"columns": columns, "page_size": PAGE_SIZE, "threshold": threshold}), "rows": token})
    head, tail = text.split(token)

    def write(handle: BinaryIO) -> None:
        handle.write(head.encode("utf-8"))
        handle.write(b"[")
        for n, record in enumerate(records):
            handle.write((b",\n" if n else b"") + script_json(_page_row(record)).encode("utf-8"))
        handle.write(b"]")
        handle.write(tail.encode("utf-8"))

    try:
        atomic_write(path, write)
    except OSError as exc:
        raise RunFailure(f"{path}: cannot write the archive page ({exc.strerror or exc})") from None
    return path


def check_outputs(videos: Iterable[Path], out: Path | None, output_format: str, pages: Path | None) -> None:
    """Before any work: no video's own CSV may land on OUT/summary.csv or OUT/events.csv, and a
    file already there must be one that vad wrote (its header), not a user's."""
    if out is None:
        return
    csv_in_out = output_format == "csv" or (pages is not None and pages.suffix.lower() not in (".html", ".htm")
                                            and pages.resolve() == out.resolve())
    names = {Path(name).stem for name in ARCHIVE_FILES}
    clash = [v for v in videos if csv_in_out and id_of(v) in names]
    if clash:
        raise ConfigError(f"{getattr(clash[0], 'path', clash[0])}: its scores would be written as {out / (id_of(clash[0]) + '.csv')}, "
                          f"a file of the archive summary; rename the video")
    for name, header in zip(ARCHIVE_FILES, (SUMMARY_HEADER, EVENTS_HEADER)):
        path = out / name
        if path.exists() and _first_line(path) != ",".join(header):
            raise ConfigError(f"{path}: a file that vad did not write is in the way of the archive {name.removesuffix('.csv')}; "
                              f"move it or choose another --out")


def _first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as handle:
            return handle.readline(256).rstrip("\r\n")
    except OSError:
        return ""


def read_summary(handle: TextIO) -> list[dict]:
    """summary.csv's rows as dicts (for tests and scripts)."""
    return list(csv.DictReader(handle))


def id_of(video) -> str:
    """The id a video's outputs are named by: its `video_id` (extract/inputs.py VideoItem), else its file's stem."""
    video_id = getattr(video, "video_id", None)
    return str(video_id) if video_id else Path(video).stem
