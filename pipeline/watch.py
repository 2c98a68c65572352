"""`vad watch`: a live source -> causal snippet scores and events, one JSON line each.

source (extract/stream.py, a decode thread) -> a bounded queue of finished snippets (oldest dropped when full)
-> the model file's backbone (Engine, one snippet per pass) -> the detector on a trailing window of the last W
snippets' features -> the online score correction (top-k of the window) -> JSON lines, events, --on-event.

Causality: the detector's Conv1d (kernel 3, padding 1) makes snippet t depend on t-1, t and t+1. By default
(lookahead) snippet t is scored when t+1 has arrived, at position -2 of the window, and the last snippet of a
stream (or the one before a gap: dropped snippets, a drop of the source) with zero padding on the right, as offline. With a window of at least 3 snippets the
no-attention detector then gives exactly the offline raw scores. `lookahead=False` scores each snippet on arrival
with zero padding on the right: one snippet less latency, scores that differ from offline.
Self-attention (when the detector has it) sees only the window: scores differ from offline by what the missing
context would have added.

--on-event runs its program once per event, its stdout and stderr on vad's stderr (stdout holds only JSON lines),
killed after --on-event-timeout seconds; the program is looked up and --out opened before the model loads, so
either fails at once with exit 2. SIGINT/SIGTERM end the watch (exit 0) at any point: while the model loads, while
scoring, or while --on-event programs still run (killed after a second). A closed stdout (`vad watch ... | head`) ends
the watch quietly; a failed write of --out or stdout is one line and exit 1.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import shlex
import shutil
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

from vad.errors import ConfigError, RunFailure
from vad.extract.stream import RTSP_TRANSPORTS, SourceConfig, StreamGap, StreamSnippet, parse_source, stream_snippets
from vad.models.correction import video_level_score
from vad.models.inference import refuse_non_finite, score_video
from vad.pipeline.score import ScoringNetwork
from vad.settings import build, setting

log = logging.getLogger("vad")

DEFAULT_WINDOW = 32  # snippets (~17 s at 30 fps); bench/watch.py: the detector on 32 snippets costs well under 1 ms of a snippet's budget


def hook_argv(command: str | list[str]) -> list[str]:
    """The --on-event command as argv, checked: a malformed or empty line, or a program that is not there, is a
    ConfigError (exit 2), found before the source is opened rather than at the first event."""
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as exc:  # shlex: "No closing quotation", "No escaped character"
            raise ConfigError(f"{command!r}: {exc}; quote it as in a shell line") from None
    else:
        argv = [str(part) for part in command]
    if not argv:
        raise ConfigError("an empty command line; give a program, e.g. --on-event 'notify-send vad'")
    if shutil.which(argv[0]) is None:
        raise ConfigError(f"{argv[0]}: no such program (not on PATH, or not an executable file); install it or give its path")
    return argv


def _argv(text: str) -> list[str]:
    return hook_argv(text)


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
                                                     "on its stdin; its output goes to stderr.", metavar="CMD", parse=_argv)
    on_event_timeout: float = setting(10.0, "Seconds an --on-event program may run; it is killed after them (logged).", minimum=0,
                                      min_open=True)
    timeout: float = setting(10.0, "Seconds to open the source and to wait for data.", minimum=0, min_open=True)
    rtsp_transport: str = setting("tcp", "RTSP over TCP (interleaved) or UDP.", choices=RTSP_TRANSPORTS)
    reconnect: int = setting(5, "Reopen attempts in a row after a network source drops (backoff 0.5 s, doubling to 8 s); a failed "
                                "open and a connection that drops before a whole snippet each count one, a connection that "
                                "delivers a snippet starts the count over. 0: end at the first drop.", minimum=0)
    realtime: bool = setting(False, "Files only: pace the frames at the file's frame rate (default: as fast as they decode).")
    # The Python API's own: where lines go, signals, a bound for tests and benchmarks, a loaded Scorer.
    stdout: TextIO | None = setting(None, "A text stream for the JSON lines (None: sys.stdout).", cli=False)
    handle_signals: bool = setting(True, "SIGINT/SIGTERM end the watch cleanly (main thread only).", cli=False)
    max_snippets: int | None = setting(None, "Stop after this many scored snippets.", minimum=1, cli=False)
    scorer: object = setting(None, "A loaded Scorer (None: loaded from the model).", cli=False)
    _delay: float = field(default=0.0, repr=False)  # seconds added to each snippet's processing (tests: a slow model)


class DropQueue:
    """A bounded queue that drops its oldest item when full, counting the drops. Markers (items of the `markers`
    types: a source's drops) are never dropped and take no room."""

    def __init__(self, size: int, markers: tuple[type, ...] = ()):
        self.items: collections.deque = collections.deque()
        self.size, self.dropped, self.closed, self.markers = size, 0, False, markers
        self.cond = threading.Condition()

    def _full(self) -> bool:
        return sum(not isinstance(item, self.markers) for item in self.items) >= self.size

    def put(self, item, block: Callable[[], bool] | None = None) -> None:
        """Append; when full, drop the oldest, or with `block` wait for room while block() is true."""
        with self.cond:
            if not isinstance(item, self.markers):
                while block is not None and block() and self._full():
                    self.cond.wait(0.1)
                if self._full():
                    oldest = next(i for i, queued in enumerate(self.items) if not isinstance(queued, self.markers))
                    del self.items[oldest]
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
        last = self.items[-1][0] if self.items else None
        if last is not None and (snippet.index != last.index + 1 or snippet.run != last.run):  # a gap (dropped snippets, a drop
            done += self.finish()  # of the source): the pending one ends its run
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


def _stderr_fd() -> int:
    """vad's stderr as a file descriptor for a child process (2 where sys.stderr is not a file: tests' captures)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return 2


class Hooks:
    """The --on-event program, one process per event, each watched by a thread so that it never stalls the scoring:
    the event's JSON line on its stdin, its stdout and stderr on vad's stderr (never among the JSON lines), its own
    process group, killed after `timeout` seconds. A program that cannot start, exits non-zero or is killed is a
    warning; the watch goes on."""

    def __init__(self, argv: list[str], timeout: float):
        self.argv, self.timeout = argv, timeout
        self.threads: list[threading.Thread] = []
        self.running: set[subprocess.Popen] = set()
        self.killed: set[subprocess.Popen] = set()  # by a signal: not reported once more as an exit status
        self.lock = threading.Lock()

    def run(self, event: dict) -> None:
        try:
            err = _stderr_fd()
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=err, stderr=err, start_new_session=True)
        except OSError as exc:  # removed or made unexecutable since the start
            log.warning("--on-event %s: could not start (%s)", self.argv[0], exc.strerror or exc)
            return
        with self.lock:
            self.running.add(proc)
        thread = threading.Thread(target=self._watch, args=(proc, event), name="vad-watch-on-event", daemon=True)
        thread.start()
        self.threads.append(thread)

    def _watch(self, proc: subprocess.Popen, event: dict) -> None:
        name = self.argv[0]
        try:
            proc.stdin.write((json.dumps(event) + "\n").encode())
            proc.stdin.close()
        except OSError:  # a program that exits without reading its stdin
            pass
        try:
            code = proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            log.warning("--on-event %s: still running after %g s; killed", name, self.timeout)
            return
        finally:
            with self.lock:
                self.running.discard(proc)
        if proc in self.killed:
            return
        if code < 0:
            log.warning("--on-event %s: ended by signal %d", name, -code)
        elif code:
            log.warning("--on-event %s: exited with status %d", name, code)

    def close(self, interrupted: Callable[[], bool], grace: float = 1.0) -> None:
        """Wait for the programs still running (each at most its timeout); once interrupted() (a signal), at most
        `grace` seconds more (a notifier started by the event the signal closed can finish), then kill them."""
        deadline = None
        while any(thread.is_alive() for thread in self.threads):
            if deadline is None and interrupted():
                deadline = time.monotonic() + grace
            if deadline is not None and time.monotonic() >= deadline:
                with self.lock:
                    running = list(self.running)
                    self.killed.update(running)
                for proc in running:
                    _kill_group(proc)
                if running:
                    log.warning("--on-event %s: %d program(s) still running; killed by the signal", self.argv[0], len(running))
                for thread in self.threads:
                    thread.join(timeout=5)
                return
            for thread in self.threads:
                thread.join(timeout=0.05)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the program's process group (its children too), SIGKILL a second later if it is still there."""
    for sig, grace in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def watch(source: str, model=None, **config) -> dict:
    """Watch a live source (URL, camera or file) and write one JSON line per snippet and per event.

    `model`: a model.pt (None: the default model, as `vad score`); `config`: WatchConfig's fields.
    Returns a summary: snippets scored and dropped, events, seconds. Ends at the end of a file, when a network
    source cannot be reopened after its drops, at SIGINT/SIGTERM, or after `max_snippets`; an open event is closed.
    A signal while the model loads returns at once with nothing scored. BrokenPipeError when `stdout` is a pipe
    that was closed (raised once the watch has ended cleanly); RunFailure when --out or stdout cannot be written.
    """
    cfg = build(WatchConfig, {**config, **({"model": model} if model is not None else {})}, "watch")
    try:
        argv = hook_argv(cfg.on_event) if cfg.on_event else None
    except ConfigError as exc:
        raise ConfigError(f"watch: setting 'on_event' (--on-event): {exc}") from None
    src = parse_source(str(source))
    hooks = Hooks(argv, cfg.on_event_timeout) if argv else None
    sink = _open_out(cfg.out) if cfg.out is not None else None
    stop, signalled, loading = threading.Event(), threading.Event(), threading.Event()

    def on_signal(*_):
        stop.set()
        signalled.set()
        if loading.is_set():  # the model load has no way to be told: leave it
            loading.clear()
            raise _Interrupted

    previous = {}
    if cfg.handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    started = time.monotonic()
    try:
        loading.set()
        scorer = cfg.scorer or _load(cfg)
        loading.clear()
    except _Interrupted:
        _restore(previous)
        _close_quietly(sink)
        log.warning("stopped by a signal while the model loaded")
        return {"source": str(source), "scored": 0, "dropped": 0, "seconds": round(time.monotonic() - started, 2)}
    except BaseException:
        _restore(previous)
        _close_quietly(sink)
        raise
    engine = scorer.engine
    engine.batch_size = 1
    out = sys.stdout if cfg.stdout is None else cfg.stdout
    broken: list[BaseException] = []  # stdout closed (BrokenPipeError) or a write that failed (RunFailure)

    def write(record: dict) -> None:
        """One JSON line to stdout and --out; a failure ends the watch (stop) and is raised once it has ended."""
        nonlocal out, sink
        line = json.dumps(record) + "\n"
        if out is not None:
            try:
                out.write(line)
                out.flush()
            except BrokenPipeError as exc:  # `vad watch ... | head`: nobody reads any more
                out = None
                broken.append(exc)
                stop.set()
            except OSError as exc:
                out = None
                broken.append(RunFailure(f"stdout: cannot write ({exc.strerror or exc}); the watch stopped"))
                stop.set()
        if sink is not None:
            try:
                sink.write(line)
                sink.flush()
            except OSError as exc:
                _close_quietly(sink)
                sink = None
                broken.append(RunFailure(f"--out {cfg.out}: cannot write ({exc.strerror or exc}); the watch stopped, the lines "
                                         f"before this one are in the file"))
                stop.set()

    def emit_event(record: dict) -> None:
        write(record)
        log.info("event %s at %.2f s (peak %.3f)", record["event"], record.get("t_end_s", record["t_start_s"]), record["peak"])
        if hooks is not None:
            hooks.run(record)

    queue = DropQueue(cfg.queue, markers=(StreamGap,))
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
    scored, dropped = 0, 0

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
            if isinstance(snippet, StreamGap):  # the source dropped: its run ends, its last snippet is scored now
                emit(window.finish())
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
        if hooks is not None:
            hooks.close(signalled.is_set)
        _restore(previous)
        _close_quietly(sink)
    if broken:
        raise broken[0]
    if failure:  # SourceError / SourceUnreachable (VadError) or a decode bug, raised in this thread
        raise failure[0]
    return {"source": str(source), "scored": scored, "dropped": queue.dropped, "seconds": round(time.monotonic() - started, 2)}


class _Interrupted(BaseException):
    """SIGINT/SIGTERM while the model loads (raised by the signal handler, caught by watch)."""


def _restore(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _open_out(path: Path):
    """--out opened for appending before the model loads: a missing folder or a path this user cannot write is a
    ConfigError (exit 2) at once, not an error after the model has loaded."""
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write there ({exc.strerror or exc}); give a file in an existing folder you can "
                          f"write") from None


def _close_quietly(sink) -> None:
    """Close --out; what a full disk kept in its buffer is lost (the write error was already reported)."""
    if sink is None:
        return
    try:
        sink.close()
    except OSError:
        pass


def _load(cfg: WatchConfig):
    """The scoring network of the watch: the ScoringNetwork settings, one snippet per pass, PyAV."""
    from vad.pipeline.score import ScoreConfig, Scorer

    shared = {f.name: getattr(cfg, f.name) for f in fields(ScoringNetwork)}
    return Scorer.from_config(ScoreConfig(**shared, batch_size=1, decoder="pyav"))
