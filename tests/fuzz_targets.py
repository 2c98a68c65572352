"""Fuzz targets shared by tests/test_fuzz.py (bounded, in CI) and bench/fuzz.py (longer runs).

Each target feeds one input to a front end of vad and returns normally or raises the one
exception type that front end promises (a clear message for the user); anything else, or a
hang, is a bug.
"""
from __future__ import annotations

import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

from hypothesis import strategies as st

from vad.extract.decode import DecodeError
from vad.extract.snippets import SnippetPlan, VideoSummary, iter_snippets
from vad.pipeline.importers import ImportError_, import_ucf_gt, import_xd_gt, read_frame_counts
from vad.tables import TableError, read_gt, read_labels

from videos import pattern_frames, write_lossless

VIDEO_SECONDS = 20  # a mutated file must decode (or be refused) within this


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: int):
    def expired(*_):
        raise Hang(f"no answer within {seconds}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _file(data: bytes, name: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="vad-fuzz-"))
    path = folder / name
    path.write_bytes(data)
    return path


def table_target(kind: str, data: bytes) -> str:
    """'accepted' or 'refused' (the importer's own error); raises anything else."""
    path = _file(data, "table.csv")
    try:
        if kind == "labels":
            read_labels(path, known_ids=["a", "b", "Abuse/Abuse001_x264"])
        elif kind == "gt":
            read_gt(path, known_ids=["a", "b"], n_frames={"a": 100, "b": 50})
        elif kind == "frame_counts":
            read_frame_counts([path])
        elif kind == "ucf_gt":
            import_ucf_gt(path, frame_counts={"a": 100})
        elif kind == "xd_gt":
            import_xd_gt(path, frame_counts={"a": 100})
    except (TableError, ImportError_):
        return "refused"
    finally:
        path.unlink()
        path.parent.rmdir()
    return "accepted"


TABLE_KINDS = ("labels", "gt", "frame_counts", "ucf_gt", "xd_gt")
TOKENS = ["video", "label", "start_frame", "end_frame", "a", "b", "0", "1", "-1", "normal", "abnormal", "100", "99999999999999999999",
          "1e3", "nan", "", " ", ",", "|", "[1, 2]", "\"", "\"a,b\"", "\x00", "é", "Abuse/Abuse001_x264.mp4", "\ufeff", "\r"]


HEADERS = {"labels": "video,label\n", "gt": "video,start_frame,end_frame\n"}


def table_inputs(kind: str = "") -> st.SearchStrategy[bytes]:
    """Raw bytes, and CSV-shaped lines built from the formats' own tokens, also after the
    format's header (reach past the header check)."""
    line = st.lists(st.sampled_from(TOKENS), max_size=6).map(lambda parts: st_join(parts))
    shaped = st.lists(line, max_size=8).map(lambda lines: "\n".join(lines))
    headed = shaped.map(lambda body: HEADERS.get(kind, "") + body)
    text = st.text(max_size=200)
    return st.one_of(st.binary(max_size=300), *(s.map(lambda t: t.encode("utf-8", "surrogatepass")) for s in (text, shaped, headed)))


def st_join(parts: list[str]) -> str:
    # comma-separated mostly (the CSVs); space-separated at 4 and 6 fields (UCF/XD annotation lines)
    return " ".join(parts) if len(parts) in (4, 6) else ",".join(parts)


_BASE: dict[str, bytes] = {}


def base_clip() -> bytes:
    """A real 24-frame H.264 clip (two snippets), made once per process."""
    if "clip" not in _BASE:
        folder = Path(tempfile.mkdtemp(prefix="vad-fuzz-"))
        _BASE["clip"] = write_lossless(folder / "base.mp4", pattern_frames(24, 48, 32, seed=5)).read_bytes()
    return _BASE["clip"]


def mutate(base: bytes, flips: list[tuple[float, int]], cut: float | None, dup: tuple[float, float] | None) -> bytes:
    data = bytearray(base)
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    if dup is not None:  # copy a chunk over another place: plausible container structure, wrong place
        start, dest = int(dup[0] * len(data)), int(dup[1] * len(data))
        chunk = data[start:start + 64]
        data[dest:dest + len(chunk)] = chunk
    if cut is not None:
        data = data[: int(cut * len(data))]
    return bytes(data)


def video_inputs() -> st.SearchStrategy[tuple]:
    unit = st.floats(0, 1, allow_nan=False)
    return st.tuples(st.lists(st.tuples(unit, st.integers(0, 255)), max_size=12), st.none() | unit,
                     st.none() | st.tuples(unit, unit), st.sampled_from(["auto", "pyav", "decord"]))


def video_target(data: bytes, decoder: str) -> str:
    """'decoded' (with n frames), or 'refused' (DecodeError); raises anything else."""
    path = _file(data, "clip.mp4")
    try:
        with time_limit(VIDEO_SECONDS):
            summary = VideoSummary()
            n = sum(1 for _ in iter_snippets(path, SnippetPlan(crops=1, decoder=decoder), summary))
        assert n == -(-summary.n_frames // 16), (n, summary.n_frames)
        return "decoded"
    except DecodeError:
        return "refused"
    finally:
        path.unlink()
        path.parent.rmdir()
