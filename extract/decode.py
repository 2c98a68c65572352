"""Video decoding: PyAV first, decord as the fallback, frames streamed in chunks.

Frames come out as RGB uint8 HxWx3 in decoder output order, and the count is what actually
decodes, not what the container claims (some files over-report). A stream that breaks part
way keeps what decoded and reports itself partial.

Frames come out upright: the display matrix phones write (rotation, rarely a mirror) is
applied as ffmpeg's autorotate and OpenCV's orientation-auto do, so a portrait phone clip
gives portrait frames, and width/height describe the frames as returned.
"""
from __future__ import annotations

import logging
import math
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vad.errors import ConfigError, RunFailure
from vad.extract.inputs import missing_file_reason

log = logging.getLogger("vad")

DECODERS = ("auto", "decord", "pyav")
DECORD_CHUNK = 32  # frames per decord batch: few Python round trips...
DECORD_CHUNK_BYTES = 64 << 20  # ...but at most this much RGB per batch: 2 frames at 4K, where a batch of 32 is 800 MB
# Frames a PyAV helper thread decodes ahead of the RGB conversion, so that the two overlap as in
# ffmpeg's own decoder and filter threads. Decoders without threads (msmpeg4v3 / DivX 3, MJPEG)
# otherwise decode and convert in turn: 0.67-0.74 of `ffmpeg -f null`, 0.91-0.95 with it
# (bench/DECODE.md). 0 turns it off. A few frames absorb the jitter; each is a YUV frame (12 MB at 4K).
DECODE_AHEAD = 4


class DecodeError(RunFailure):
    """A video that cannot be decoded at all; the message names the file."""


@dataclass(frozen=True)
class Orientation:
    """How stored frames become upright: mirror left-right first, then `turns` quarter turns counter-clockwise."""

    turns: int = 0  # np.rot90's k
    mirror: bool = False

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        if self.mirror:
            rgb = rgb[:, ::-1]
        if self.turns:
            rgb = np.rot90(rgb, self.turns)
        # Contiguous: torch.from_numpy refuses the negative strides of a flipped view.
        return np.ascontiguousarray(rgb) if self.mirror or self.turns else rgb

    def describe(self) -> str:
        steps = (["mirrored left-right"] if self.mirror else []) + ([f"rotated {90 * self.turns} degrees counter-clockwise"] if self.turns else [])
        return ", then ".join(steps) or "upright"


UPRIGHT = Orientation()


def display_orientation(matrix) -> Orientation | None:
    """The Orientation for a display matrix (9 int32, FFmpeg's 16.16 AV_PKT_DATA_DISPLAYMATRIX layout).

    The angle is av_display_rotation_get's (counter-clockwise degrees, as PyAV's VideoFrame.rotation),
    and a negative determinant is a mirror. Checked against ffmpeg 9's autorotate for all eight
    rotation/mirror combinations (tests/test_reliability_videos.py). None: an angle that is not a
    multiple of 90 degrees (ffmpeg would resample; no phone writes one) or a degenerate matrix.
    """
    a, b, _, c, d = (float(v) for v in matrix[:5])
    if math.hypot(a, c) == 0 or math.hypot(b, d) == 0:
        return None
    degrees = -math.degrees(math.atan2(b / math.hypot(b, d), a / math.hypot(a, c)))
    if abs(degrees / 90 - round(degrees / 90)) * 90 > 1:  # within a degree, as ffmpeg's own test
        return None
    mirror = a * d - b * c < 0
    # A mirrored matrix's angle is measured on the flipped axes: half a turn more after the flip.
    return Orientation((round(degrees / 90) + 2 * mirror) % 4, mirror)


def frame_orientation(frame, path: Path) -> Orientation:
    """The Orientation a decoded PyAV frame asks for (UPRIGHT when it carries no display matrix)."""
    from av.sidedata.sidedata import Type

    data = frame.side_data.get(Type.DISPLAYMATRIX)
    if data is None:
        return UPRIGHT
    raw = bytes(data)
    matrix = np.frombuffer(raw, np.int32) if len(raw) == 36 else np.zeros(0, np.int32)
    orientation = display_orientation(matrix) if matrix.size == 9 else None
    if orientation is None:
        log.warning("%s: display matrix %s is not a multiple of 90 degrees; frames kept as stored", path, matrix.tolist())
        return UPRIGHT
    return orientation


INDEX_SLACK_FRAMES = 1  # a container may list this many frames more than a complete stream holds


@dataclass
class FrameStream:
    """An open video. Iterate once for frames; after iteration `n_decoded`, `partial`, `error` are final."""

    path: Path
    decoder: str
    fps: float
    width: int
    height: int
    expected_frames: int  # what the container or index claims; may differ from n_decoded
    _reader: object
    orientation: Orientation = UPRIGHT  # the display matrix's: frames and width/height are upright (PyAV turns each frame, decord turns itself)
    _frames: Iterator | None = None  # PyAV: its decoded frames, the one decoded at open in front
    decode_ahead: int = 0  # PyAV: frames a helper thread decodes ahead of the RGB conversion; 0: no thread
    n_decoded: int = 0
    partial: bool = False
    error: str | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        frames = _iter_decord(self) if self.decoder == "decord" else _iter_pyav(self)
        for frame in frames:
            self.n_decoded += 1
            yield frame

    def mark_broken(self, exc: BaseException) -> None:
        if self.n_decoded == 0:
            raise DecodeError(f"{self.path}: no frame could be decoded ({_reason(exc)})") from None
        self.partial = True
        self.error = _reason(exc)
        log.warning("%s: decoding stopped after %d frames (%s); keeping them, marked partial", self.path, self.n_decoded, self.error)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _open_decord(path: Path) -> FrameStream:
    """decord rotates by the display matrix's angle itself, but ignores mirrors, and at 90 or 270
    degrees returns 4-channel garbage or fails (decord 0.6.0): only upright and half-turned files
    come out as PyAV gives them; the others fail here with the reason rather than decode sideways."""
    import decord

    orientation = _probe_orientation(path)
    if orientation is not None and (orientation.turns % 2 or orientation.mirror):
        raise ValueError(f"its display matrix says {orientation.describe()}, which decord 0.6 cannot apply; use --decoder pyav or auto")
    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=0)
    first = reader[0].shape if len(reader) else (0, 0, 3)
    if first[2] != 3:  # the 90/270-degree bug, seen here when PyAV could not read the matrix
        raise ValueError(f"decord returned {first[2]}-channel frames, its failure on videos rotated 90 or 270 degrees")
    return FrameStream(path, "decord", float(reader.get_avg_fps()), int(first[1]), int(first[0]), len(reader), reader, orientation or UPRIGHT)


def _probe_orientation(path: Path) -> Orientation | None:
    """The display-matrix Orientation as PyAV reads it from the first frame; None where PyAV cannot tell."""
    try:
        import av

        with av.open(str(path)) as container:
            return frame_orientation(next(container.decode(video=0)), path)
    except Exception:  # no PyAV, or a file PyAV cannot decode: decord is on its own
        return None


def decord_chunk(width: int, height: int) -> int:
    """Frames per decord batch: DECORD_CHUNK, fewer for large frames (a 4K batch of 32 is 800 MB)."""
    return max(1, min(DECORD_CHUNK, DECORD_CHUNK_BYTES // max(1, width * height * 3)))


def _iter_decord(stream: FrameStream) -> Iterator[np.ndarray]:
    reader = stream._reader
    total = len(reader)
    chunk = decord_chunk(stream.width, stream.height)
    for start in range(0, total, chunk):
        try:
            batch = reader.get_batch(list(range(start, min(start + chunk, total)))).asnumpy()
        except Exception as exc:  # decord raises DECORDError / RuntimeError on corrupt packets
            stream.mark_broken(exc)
            return
        yield from batch


def _open_pyav(path: Path) -> FrameStream:
    import av

    container = av.open(str(path))
    if not container.streams.video:
        container.close()
        raise DecodeError(f"{path}: no video stream (audio-only or not a video)")
    video = container.streams.video[0]
    video.thread_type = "AUTO"  # frame+slice threading where the codec has it: several times faster, same pixels
    rate = video.average_rate or video.guessed_rate or 0
    width, height = int(video.codec_context.width), int(video.codec_context.height)
    # The display matrix reaches PyAV 18 only as frame side data: decode the first frame now
    # (replayed by the iteration) so width and height can describe the frames as returned.
    frames = container.decode(video=0)
    try:
        first = next(frames, None)
    except Exception as exc:  # a first frame that fails decoding fails in the iteration, as any other
        first = exc
    orientation = frame_orientation(first, path) if isinstance(first, av.VideoFrame) else UPRIGHT
    if orientation.turns % 2:
        width, height = height, width
    return FrameStream(path, "pyav", float(rate), width, height, int(video.frames or 0), container, orientation, _replay(first, frames),
                       decode_ahead=DECODE_AHEAD)


def _replay(first, rest: Iterator) -> Iterator:
    """The decoder's frames with the one decoded at open in front, or that frame's error raised first."""
    if isinstance(first, BaseException):
        raise first
    if first is not None:
        yield first
        yield from rest


class _Failed:
    """The exception that ended the decode thread, handed to the consumer in the frames' place."""

    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()  # the decode thread's last item: the stream ended


def decode_ahead(frames: Iterator, depth: int) -> Iterator:
    """`frames` (decoded frames, or whole snippets: Engine.video), pulled in a helper thread up to
    `depth` ahead. PyAV releases the GIL while it demuxes and decodes, as Pillow does while it
    resizes, so one core makes the next item while this one uses the last.

    Same items, same order; an exception of the source is raised here after the items before it.
    Closing this generator early stops the thread and waits for it, so the container can be closed.
    """
    ready: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():  # a consumer that stopped early takes nothing more: do not block on a full queue
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for frame in frames:
                if not put(frame):
                    return
        except BaseException as exc:  # handed over: the consumer decides (mark_broken, or re-raise)
            put(_Failed(exc))
        else:
            put(_END)

    thread = threading.Thread(target=produce, name="vad-decode", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


def _iter_pyav(stream: FrameStream) -> Iterator[np.ndarray]:
    container = stream._reader
    frames = decode_ahead(stream._frames, stream.decode_ahead) if stream.decode_ahead else stream._frames
    try:
        for frame in frames:
            # threads=1: PyAV's default (0 = one swscale thread per core) spends more time
            # starting and joining threads than converting a frame: 6x slower at 320x240,
            # 2x at 856x480 (bench/THROUGHPUT.md). The pixels are identical.
            yield stream.orientation.apply(frame.to_ndarray(format="rgb24", threads=1))
    except Exception as exc:  # av.error.* on truncated or corrupt data
        stream.mark_broken(exc)
    else:
        # A file cut mid-stream often just ends: fewer frames than its index lists is the only sign.
        # One frame short is not that: containers with broken timestamps list one frame more
        # than they hold, and `ffmpeg -f null` decodes the same count.
        missing = stream.expected_frames - stream.n_decoded
        if stream.n_decoded > 0 and missing > INDEX_SLACK_FRAMES:
            stream.mark_broken(EOFError(f"decoded {stream.n_decoded} of the {stream.expected_frames} frames the container lists (truncated file?)"))
        elif missing > 0:
            log.info("%s: the container lists %d frame(s) more than it holds (timestamps); all %d decoded", stream.path, missing, stream.n_decoded)
    finally:
        if stream.decode_ahead:
            frames.close()  # stops and joins the decode thread: it must not decode from a closed container
        container.close()


def open_video(path: str | Path, decoder: str = "auto") -> FrameStream:
    """Open `path` with the chosen decoder; "auto" tries PyAV and falls back to decord for this video.

    PyAV goes first because it decodes faster at every size we measured (bench/decode.py:
    decord's own RGB conversion costs it 40% at 856x480); both give identical pixels.
    """
    path = Path(path)
    if decoder not in DECODERS:
        raise ConfigError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
    if not path.is_file():
        raise DecodeError(f"{path}: {missing_file_reason(path)}")
    if not os.access(path, os.R_OK):
        raise DecodeError(f"{path}: permission denied (not readable by this user)")
    if path.stat().st_size == 0:
        raise DecodeError(f"{path}: empty file (0 bytes)")
    order = ["pyav", "decord"] if decoder == "auto" else [decoder]
    failures = []
    for name in order:
        try:
            stream = _open_decord(path) if name == "decord" else _open_pyav(path)
        except ImportError as exc:
            failures.append(f"{name} not installed ({exc})")
            continue
        except DecodeError:
            raise
        except Exception as exc:
            failures.append(f"{name}: {_reason(exc)}")
            continue
        if stream.width <= 0 or stream.height <= 0:
            failures.append(f"{name}: no decodable video frames")
            continue
        if name == "decord" and len(order) > 1:
            log.info("%s: PyAV could not open it, decoding with decord", path)
        return stream
    raise DecodeError(f"{path}: cannot decode ({'; '.join(failures)})")


def read_all_frames(path: str | Path, decoder: str = "auto") -> tuple[np.ndarray, FrameStream]:
    """Every frame as [N,H,W,3] uint8; for short clips and tests (extraction streams instead)."""
    stream = open_video(path, decoder)
    frames = list(stream)
    return np.stack(frames), stream
