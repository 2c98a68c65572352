"""Live sources for `vad watch`: URLs, cameras and files opened with PyAV, read with timeouts, reopened when they drop.

A source is an `rtsp://`, `http(s)://` (MPEG-TS, HLS), `udp://` URL, a V4L2 device (`/dev/videoN`) or a file.
`stream_snippets` turns it into 16-frame snippets with the preprocessing of `iter_snippets` (same JPEG round trip,
resize and crops, so the features match `vad score`), each with its frame range and the monotonic time its last
frame arrived. Frames are numbered from the first frame of the first connection; a reconnection continues the count,
and the partial snippet a drop leaves behind is dropped (its frames are counted, never scored). Each connection is a
run of its own: its snippets carry a `run` number, and a `StreamGap` marks each drop, so that the scorer ends the run
there (the snippet before the drop gets zero padding on the right, as at the end of a stream).

Reconnection: `reconnect` bounds the reopen attempts in a row without a snippet. A failed open is one attempt, and so
is a connection that drops before it has delivered a whole snippet; a connection that delivers a whole snippet starts
the count (and the backoff) over. A source that stalls before each first snippet therefore ends after `reconnect`
reopens; one that plays a while between stalls is reopened as long as it keeps doing so.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vad.errors import RunFailure, VadError
from vad.extract.decode import UPRIGHT, frame_orientation
from vad.extract.inputs import missing_file_reason
from vad.extract.preprocess import jpeg_roundtrip, resize_frame
from vad.extract.snippets import SnippetPlan, finish_frames, resize_in_worker

log = logging.getLogger("vad")

URL_SCHEMES = ("rtsp", "rtsps", "http", "https", "udp", "rtp", "tcp", "srt")
RTSP_TRANSPORTS = ("tcp", "udp")


class SourceError(VadError):
    """A source that can never work: an unknown URL scheme, a missing file or device (exit 2)."""


class SourceUnreachable(RunFailure):
    """A source that could not be read within the timeouts and reconnection attempts (exit 1)."""


@dataclass(frozen=True)
class SourceConfig:
    timeout: float = 10.0  # seconds to open, and to wait for data once open
    rtsp_transport: str = "tcp"  # tcp | udp, for rtsp:// sources
    reconnect: int = 5  # reopen attempts in a row without a snippet, after a drop (0: end at the first drop)
    backoff: float = 0.5  # seconds before the first reopen; doubled each attempt, at most 8 s
    realtime: bool = False  # files only: pace frames at the file's frame rate


@dataclass(frozen=True)
class Source:
    text: str  # as given
    kind: str  # url | device | file
    scheme: str = ""  # url only


@dataclass(frozen=True)
class StreamSnippet:
    index: int  # snippet number, counting every finished snippet of the stream
    frame_start: int  # first frame, counted from the stream's first frame
    frame_end: int  # one past the last frame
    crops: torch.Tensor  # as iter_snippets yields
    arrived: float  # time.monotonic() when its last frame was decoded
    fps: float
    run: int = 0  # the connection it came from: 0, then one more after each drop


@dataclass(frozen=True)
class StreamGap:
    """A drop of a network source: the run of snippets before it has ended (the scorer scores its last one now)."""

    run: int  # the run that ended


def parse_source(text: str) -> Source:
    """What `text` names; SourceError for a scheme vad cannot read or a file that is not there."""
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme == "file":
            return parse_source(text.split("://", 1)[1])
        if scheme not in URL_SCHEMES or not text.split("://", 1)[1]:
            raise SourceError(f"{text}: cannot read {scheme!r} URLs; use rtsp://, http(s):// (MPEG-TS, HLS), udp://, a /dev/videoN camera or a file")
        return Source(text, "url", scheme)
    path = Path(text)
    if text.startswith("/dev/video"):
        if not path.exists():
            raise SourceError(f"{text}: no such camera device")
        return Source(text, "device")
    if not path.is_file():
        raise SourceError(f"{text}: {missing_file_reason(path)}")
    return Source(text, "file")


def open_options(source: Source, config: SourceConfig) -> dict:
    """av.open keyword arguments: FFmpeg's own socket timeouts (microseconds) plus PyAV's read timeout."""
    options: dict[str, str] = {}
    micro = str(int(config.timeout * 1e6))
    if source.kind == "url":
        if source.scheme.startswith("rtsp"):
            options.update(rtsp_transport=config.rtsp_transport, timeout=micro)
        elif source.scheme == "udp":
            options.update(timeout=micro, overrun_nonfatal="1", fifo_size="1000000")
        else:
            options.update(rw_timeout=micro, timeout=micro)
    kwargs: dict = {"options": options, "timeout": (config.timeout, config.timeout)}
    if source.kind == "device":
        kwargs["format"] = "v4l2"
    return kwargs


def _open(source: Source, config: SourceConfig):
    import av

    container = av.open(source.text, **open_options(source, config))
    if not container.streams.video:
        container.close()
        raise SourceError(f"{source.text}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def iter_frames(source: Source, config: SourceConfig, stop: Callable[[], bool], fps_out: list, snippet_frames: int = 16) -> Iterator[np.ndarray | None]:
    """RGB frames of `source`, reopened after a drop (with backoff); a None marks each drop.

    `config.reconnect` bounds the reopen attempts in a row that bring no snippet: a failed open counts one, and so does
    a connection that drops before it has delivered `snippet_frames` frames; one that delivers them starts the count
    and the backoff over. SourceUnreachable when the first open fails every attempt. `fps_out[0]` is set to the
    stream's frame rate.
    """
    attempts, delay, ever = 0, config.backoff, False

    def give_up() -> bool:
        """True when the budget is spent; otherwise one more attempt is counted and waited for."""
        nonlocal attempts
        if attempts >= config.reconnect:
            return True
        attempts += 1
        return False

    while not stop():
        try:
            container, stream = _open(source, config)
        except VadError:
            raise
        except Exception as exc:
            if source.kind != "url" or give_up():
                what = "could not be opened" if not ever else "could not be reopened"
                if not ever:
                    raise SourceUnreachable(f"{source.text}: {what} within {config.timeout:g} s after {attempts + 1} attempt(s) ({_reason(exc)})") from None
                log.warning("%s: %s (%s); %d reopen attempt(s) in a row without a snippet, the --reconnect budget; ending",
                            source.text, what, _reason(exc), attempts)
                return
            log.warning("%s: open failed (%s); reconnect attempt %d of %d in %.1f s", source.text, _reason(exc), attempts, config.reconnect, delay)
            _sleep(delay, stop)
            delay = min(delay * 2, 8.0)
            continue
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        fps_out[0] = fps_out[0] or rate
        if ever:
            log.warning("%s: reconnected", source.text)
        ever = True
        orientation, started, n = None, time.monotonic(), 0
        error = None
        try:
            for frame in container.decode(stream):
                if orientation is None:
                    orientation = frame_orientation(frame, Path(source.text)) if source.kind == "file" else UPRIGHT
                if config.realtime and source.kind == "file":
                    wait = started + n / rate - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                n += 1
                if n == snippet_frames:  # a connection that works: the budget and the backoff start over
                    attempts, delay = 0, config.backoff
                yield orientation.apply(frame.to_ndarray(format="rgb24", threads=1))
                if stop():
                    return
        except Exception as exc:  # av.error.* when the connection drops or times out
            error = _reason(exc)
        finally:
            container.close()
        if source.kind != "url" or config.reconnect == 0:
            if error:
                log.warning("%s: decoding stopped (%s); ending", source.text, error)
            return
        yield None
        if give_up():
            log.warning("%s: stream dropped (%s) with no snippet since the last drop, after %d reopen attempt(s) in a row, the "
                        "--reconnect budget; ending", source.text, error or "end of stream", attempts)
            return
        log.warning("%s: stream dropped (%s); reconnect attempt %d of %d in %.1f s", source.text, error or "end of stream", attempts,
                    config.reconnect, delay)
        _sleep(delay, stop)
        delay = min(delay * 2, 8.0)


def stream_snippets(source: Source, plan: SnippetPlan, config: SourceConfig, stop: Callable[[], bool]) -> Iterator[StreamSnippet | StreamGap]:
    """Finished 16-frame snippets of a live source, with the preprocessing of extract/snippets.py, and a StreamGap at
    each drop of a network source.

    The last partial snippet of a file is padded with its last frame (as `vad score` does); the partial snippet
    a network drop leaves is discarded. A frame size that changes mid-stream needs nothing special: every frame is
    resized and cropped to the backbone's geometry (snippets.finish_frames)."""
    geometry = plan.geometry
    fps: list = [0.0]
    buffer: list[np.ndarray] = []
    frame_count, index, start, run = 0, 0, 0, 0
    last_arrival = time.monotonic()

    def finished(frames: list[np.ndarray], end: int, arrived: float) -> StreamSnippet:
        nonlocal index
        item = StreamSnippet(index, start, end, finish_frames(frames, plan), arrived, fps[0], run)
        index += 1
        return item

    for frame in iter_frames(source, config, stop, fps, geometry.clip_len):
        if frame is None:  # a drop: the partial snippet is lost, counting goes on, the run ends
            if buffer:
                log.info("%s: %d frame(s) of an unfinished snippet lost in the drop", source.text, len(buffer))
            buffer.clear()
            start = frame_count
            yield StreamGap(run)
            run += 1
            continue
        if plan.jpeg_quality is not None:
            frame = jpeg_roundtrip(frame, plan.jpeg_quality)
        buffer.append(resize_frame(frame, geometry.short_side) if resize_in_worker(frame, plan) else frame)
        frame_count += 1
        last_arrival = time.monotonic()
        if len(buffer) == geometry.clip_len:
            yield finished(buffer, frame_count, last_arrival)
            buffer = []
            start = frame_count
    if buffer and source.kind == "file":
        end = frame_count
        buffer += [buffer[-1]] * (geometry.clip_len - len(buffer))
        yield finished(buffer, end, last_arrival)


def _sleep(seconds: float, stop: Callable[[], bool]) -> None:
    until = time.monotonic() + seconds
    while not stop() and time.monotonic() < until:
        time.sleep(min(0.05, max(0.0, until - time.monotonic())))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
