"""`vad watch`: a live source -> causal snippet scores and events, one JSON line each.

source (extract/stream.py, a decode thread) -> a bounded queue of finished snippets (oldest dropped when full)
-> the model file's backbone (Engine, one snippet per pass) -> the detector on a trailing window of the last W
snippets' features -> the online score correction (top-k of the window) -> JSON lines, events, --on-event.

Causality: the detector's Conv1d (kernel 3, padding 1) makes snippet t depend on t-1, t and t+1. By default
(lookahead) snippet t is scored when t+1 has arrived, at position -2 of the window, and the last snippet of a
stream (or the one before a gap) with zero padding on the right, as offline. With a window of at least 3 snippets the
no-attention detector then gives exactly the offline raw scores. `lookahead=False` scores each snippet on arrival
with zero padding on the right: one snippet less latency, scores that differ from offline.
Self-attention (when the detector has it) sees only the window: scores differ from offline by what the missing
context would have added.
"""
from __future__ import annotations

import collections
import json
import logging
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np

from vad.extract.stream import RTSP_TRANSPORTS, SourceConfig, StreamSnippet, parse_source, stream_snippets
from vad.models.correction import video_level_score
from vad.models.inference import refuse_non_finite, score_video
from vad.pipeline.score import ScoringNetwork
from vad.settings import build, setting

log = logging.getLogger("vad")

DEFAULT_WINDOW = 32  # snippets (~17 s at 30 fps); bench/watch.py: the detector on 32 snippets costs well under 1 ms of a snippet's budget


def _argv(text: str) -> list[str]:
    return shlex.split(text)


@dataclass
class WatchConfig(ScoringNetwork):
    window: int = setting(DEFAULT_WINDOW, "Trailing snippets the detector and the score correction see (>= 3: the convolution needs "
                                          "both neighbours of a scored snippet).", minimum=3)
    lookahead: bool = setting(True, "Score each snippet on arrival (zero padding on the right) instead of waiting one snippet for the "
                                    "convolution's right neighbour (offline-equal).", negate=True)
    threshold: float = setting(0.5, "Score that opens an event.", minimum=0, maximum=1)
    min_snippets: int = setting(2, "Snippets in a row at or above the threshold to open an event.", minimum=1)
    cooldown: int = setting(2, "Snippets in a row below the threshold to close it.", minimum=1)
    queue: int = setting(4, "Snippets waiting for the model; when the model is slower than the stream the oldest are dropped "
                            "(counted). Live sources and --realtime files.", minimum=1)
    out: Path | None = setting(None, "Append every JSON line to this file too.", path="file")
    on_event: list[str] | str | None = setting(None, "Run CMD (split like a shell line, run without a shell) with each event's JSON "
                                                     "on its stdin.", metavar="CMD", parse=_argv)
    timeout: float = setting(10.0, "Seconds to open the source and to wait for data.", minimum=0, min_open=True)
    rtsp_transport: str = setting("tcp", "RTSP over TCP (interleaved) or UDP.", choices=RTSP_TRANSPORTS)
    reconnect: int = setting(5, "Attempts to reopen a network source after a drop (backoff 0.5 s, doubling to 8 s).", minimum=0)
    realtime: bool = setting(False, "Files only: pace the frames at the file's frame rate (default: as fast as they decode).")
    # The Python API's own: where lines go, signals, a bound for tests and benchmarks, a loaded Scorer.
    stdout: TextIO | None = setting(None, "A text stream for the JSON lines (None: sys.stdout).", cli=False)
    handle_signals: bool = setting(True, "SIGINT/SIGTERM end the watch cleanly (main thread only).", cli=False)
    max_snippets: int | None = setting(None, "Stop after this many scored snippets.", minimum=1, cli=False)
    scorer: object = setting(None, "A loaded Scorer (None: loaded from the model).", cli=False)
    _delay: float = field(default=0.0, repr=False)  # seconds added to each snippet's processing (tests: a slow model)


class DropQueue:
    """A bounded queue that drops its oldest item when full, counting the drops."""

    def __init__(self, size: int):
        self.items: collections.deque = collections.deque()
        self.size, self.dropped, self.closed = size, 0, False
        self.cond = threading.Condition()

    def put(self, item, block: Callable[[], bool] | None = None) -> None:
        """Append; when full, drop the oldest, or with `block` wait for room while block() is true."""
        with self.cond:
            while block is not None and block() and len(self.items) >= self.size:
                self.cond.wait(0.1)
            if len(self.items) >= self.size:
                self.items.popleft()
                self.dropped += 1
            self.items.append(item)
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()

    def get(self, timeout: float = 0.1):
        """(item, dropped so far); (None, dropped) on a timeout; raises EOFError once closed and empty."""
        with self.cond:
            if not self.items and not self.closed:
                self.cond.wait(timeout)
            if self.items:
                item = self.items.popleft()
                self.cond.notify_all()
                return item, self.dropped
            if self.closed:
                raise EOFError
            return None, self.dropped


class Events:
    """Opens an event after `min_snippets` scores at or above the threshold, closes it after `cooldown` below."""

    def __init__(self, config: WatchConfig, emit: Callable[[dict], None]):
        self.config, self.emit = config, emit
        self.open: dict | None = None
        self.run: list[dict] = []  # the current run of snippets at or above the threshold (not yet an event)
        self.below = 0

    def update(self, record: dict) -> None:
        high = record["score"] >= self.config.threshold
        if self.open is None:
            self.run = self.run + [record] if high else []
            if len(self.run) >= self.config.min_snippets:
                first = self.run[0]
                self.open = {"event": "start", "frame_start": first["frame_start"], "t_start_s": first["t_start_s"],
                             "wallclock": record["wallclock"], "peak": max(r["score"] for r in self.run), "threshold": self.config.threshold}
                self.emit(dict(self.open))
                self.run, self.below, self.last = [], 0, record
            return
        if high:
            self.below, self.last = 0, record
            self.open["peak"] = max(self.open["peak"], record["score"])
        else:
            self.below += 1
            if self.below >= self.config.cooldown:
                self.close(record["wallclock"])

    def close(self, wallclock: str, why: str = "cooldown") -> None:
        if self.open is None:
            return
        last = self.last
        self.emit({**self.open, "event": "end", "frame_end": last["frame_end"], "t_end_s": last["t_end_s"], "wallclock": wallclock,
                   "peak": round(self.open["peak"], 6), "reason": why})
        self.open = None


class Window:
    """Features of the trailing snippets and the causal scores of the detector on them."""

    def __init__(self, detector, config: WatchConfig):
        self.detector, self.config = detector, config
        self.items: list[tuple[StreamSnippet, np.ndarray]] = []  # (snippet, features [crops, D])
        self.raw: collections.deque = collections.deque(maxlen=config.window)  # raw scores emitted, for the correction

    def _score_at(self, position: int, items: list) -> float:
        features = np.stack([f for _, f in items])  # [W, crops, D]
        return float(score_video(self.detector, features)[position])

    def push(self, snippet: StreamSnippet, features: np.ndarray) -> list[tuple[StreamSnippet, float]]:
        """Add one snippet; returns the (snippet, raw score) pairs now complete."""
        done = []
        if self.items and snippet.index != self.items[-1][0].index + 1:  # a gap (dropped snippets): the pending one ends its run
            done += self.finish()
        self.items = (self.items + [(snippet, features)])[-self.config.window:]
        if not self.config.lookahead:
            done.append((snippet, self._score_at(-1, self.items)))
        elif len(self.items) >= 2:
            done.append((self.items[-2][0], self._score_at(-2, self.items)))
        return done

    def finish(self) -> list[tuple[StreamSnippet, float]]:
        """The pending snippet (lookahead), scored with zero padding on the right; the window starts over."""
        items, self.items = self.items, []
        if self.config.lookahead and items:
            return [(items[-1][0], self._score_at(-1, items[-(self.config.window - 1):]))]
        return []

    def corrected(self, raw: float) -> float:
        self.raw.append(raw)
        return float(np.sqrt(raw * video_level_score(np.array(self.raw)))) if self.config.correction else raw


def _on_event_argv(on_event) -> list[str] | None:
    if not on_event:
        return None
    return shlex.split(on_event) if isinstance(on_event, str) else list(on_event)


def run_program(argv: list[str], event: dict) -> threading.Thread:
    """Run the --on-event program with the event on stdin, in a thread: a slow program never stalls the scoring."""

    def go():
        try:
            subprocess.run(argv, input=(json.dumps(event) + "\n").encode(), timeout=60, check=False)
        except Exception as exc:  # a missing program or a hang is reported, not fatal
            log.warning("--on-event %s: %s", argv[0], exc)

    thread = threading.Thread(target=go, daemon=False)
    thread.start()
    return thread


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def watch(source: str, model=None, **config) -> dict:
    """Watch a live source (URL, camera or file) and write one JSON line per snippet and per event.

    `model`: a model.pt (None: the default model, as `vad score`); `config`: WatchConfig's fields.
    Returns a summary: snippets scored and dropped, events, seconds. Ends at the end of a file, when a network
    source cannot be reopened after its drops, at SIGINT/SIGTERM, or after `max_snippets`; an open event is closed.
    """
    cfg = build(WatchConfig, {**config, **({"model": model} if model is not None else {})}, "watch")
    src = parse_source(str(source))
    argv = _on_event_argv(cfg.on_event)
    scorer = cfg.scorer or _load(cfg)
    engine = scorer.engine
    engine.batch_size = 1
    out = sys.stdout if cfg.stdout is None else cfg.stdout
    sink = open(cfg.out, "a", encoding="utf-8") if cfg.out is not None else None
    threads: list[threading.Thread] = []

    def write(record: dict) -> None:
        line = json.dumps(record)
        out.write(line + "\n")
        out.flush()
        if sink is not None:
            sink.write(line + "\n")
            sink.flush()

    def emit_event(record: dict) -> None:
        write(record)
        log.info("event %s at %.2f s (peak %.3f)", record["event"], record.get("t_end_s", record["t_start_s"]), record["peak"])
        if argv:
            threads.append(run_program(argv, record))

    stop = threading.Event()
    previous = {}
    if cfg.handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    queue = DropQueue(cfg.queue)
    failure: list[BaseException] = []
    source_config = SourceConfig(timeout=cfg.timeout, rtsp_transport=cfg.rtsp_transport, reconnect=cfg.reconnect, realtime=cfg.realtime)

    def decode():
        try:
            for item in stream_snippets(src, engine.plan, source_config, stop.is_set):
                queue.put(item, block=(lambda: not stop.is_set()) if backpressure else None)
        except BaseException as exc:
            failure.append(exc)
        finally:
            queue.close()

    backpressure = src.kind == "file" and not cfg.realtime  # a file read as fast as it decodes waits for the model: nothing dropped
    reader = threading.Thread(target=decode, name="vad-watch-decode", daemon=True)
    window, events = Window(scorer.detector, cfg), Events(cfg, emit_event)
    started, scored, dropped = time.monotonic(), 0, 0

    def emit(pairs: list[tuple[StreamSnippet, float]]) -> None:
        nonlocal scored
        for snippet, raw in pairs:
            refuse_non_finite(raw, source, scorer.config.model, frames=(snippet.frame_start, snippet.frame_end))  # no NaN line is written
            fps = snippet.fps or 25.0
            record = {"frame_start": snippet.frame_start, "frame_end": snippet.frame_end,
                      "t_start_s": round(snippet.frame_start / fps, 6), "t_end_s": round(snippet.frame_end / fps, 6),
                      "wallclock": now_iso(), "score": round(window.corrected(raw), 6), "raw": round(raw, 6),
                      "latency_ms": round((time.monotonic() - snippet.arrived) * 1000, 1), "dropped_snippets": dropped}
            write(record)
            events.update(record)
            scored += 1
            if cfg.max_snippets is not None and scored >= cfg.max_snippets:
                stop.set()

    reader.start()
    try:
        while not stop.is_set():
            try:
                snippet, dropped = queue.get()
            except EOFError:
                break
            if snippet is None:
                continue
            engine.add(0, 0, snippet.crops)
            engine.flush()
            features = engine.take(0)[0]
            if cfg._delay:
                time.sleep(cfg._delay)
            emit(window.push(snippet, features))
        if cfg.max_snippets is None or scored < cfg.max_snippets:
            emit(window.finish())  # the pending snippet, at the end of the source or on a signal
    finally:
        stop.set()
        events.close(now_iso(), "end of watch")
        reader.join(timeout=cfg.timeout + 5)
        for thread in threads:
            thread.join(timeout=60)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if sink is not None:
            sink.close()
    if failure:  # SourceError / SourceUnreachable (VadError) or a decode bug, raised in this thread
        raise failure[0]
    return {"source": str(source), "scored": scored, "dropped": queue.dropped, "seconds": round(time.monotonic() - started, 2)}


def _load(cfg: WatchConfig):
    """The scoring network of the watch: the ScoringNetwork settings, one snippet per pass, PyAV."""
    from vad.pipeline.score import ScoreConfig, Scorer

    shared = {f.name: getattr(cfg, f.name) for f in fields(ScoringNetwork)}
    return Scorer.from_config(ScoreConfig(**shared, batch_size=1, decoder="pyav"))
