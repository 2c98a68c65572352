"""Faults of real footage and real streams: a resolution change mid-stream, --on-event programs that print,
hang or are missing, unusable outputs of `vad watch` (and a closed stdout for every command), and the
reconnection budget of a source that keeps stalling.

Each test gives the input, the exit code and the one-line message expected, and what files are left behind.
The model is tests/test_watch.py's: an untrained no-attention detector on i3d-r50 with the golden generator's
weights at 112-pixel crops (about 0.1 s per snippet on a CPU). Network sources are servers on 127.0.0.1 with
timeouts of a few seconds.
"""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import test_watch
from click.testing import CliRunner

from vad.errors import ConfigError
from vad.extract.preprocess import Geometry
from vad.extract.snippets import SnippetPlan, VideoSummary, iter_snippets
from vad.pipeline.cli import main
from vad.pipeline.watch import watch

from videos import pattern_frames, write_lossless

model, scorer = test_watch.model, test_watch.scorer  # its module fixtures, here too: the watch model and its loaded Scorer

VAD = [sys.executable, "-c", "from vad.pipeline.cli import main; main()"]


def write_ts(path: Path, parts: list[np.ndarray], fps: int = 30) -> Path:
    """An H.264 MPEG-TS of the parts in turn, each part at its own frame size (one encoder per size, one stream):
    what a camera that renegotiates, or recordings concatenated with `cat`, give."""
    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = parts[0].shape[2], parts[0].shape[1], "yuv420p"
        n = 0
        for i, frames in enumerate(parts):
            encoder = stream.codec_context
            if i:
                encoder = av.CodecContext.create("libx264", "w")
                encoder.width, encoder.height, encoder.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
                encoder.time_base, encoder.framerate = Fraction(1, fps), Fraction(fps)
            encoder.options = {"preset": "ultrafast", "qp": "10"}
            for rgb in [*frames, None]:
                frame = None
                if rgb is not None:
                    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                    frame.pts, frame.time_base, n = n, Fraction(1, fps), n + 1
                for packet in encoder.encode(frame):
                    packet.stream = stream
                    container.mux(packet)
    return path


def vad(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def error_line(result) -> str:
    """The one line a refusal prints: stderr must hold exactly one line starting 'vad: error: '."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vad: error: "), result.output
    return lines[0]


def network(model, weights) -> list[str]:
    return ["--model", str(model), "--weights", str(weights), "--device", "cpu", "-q"]


def run_watch(source, scorer, **config) -> list[dict]:
    out = io.StringIO()
    watch(str(source), scorer=scorer, stdout=out, handle_signals=False, **config)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def rows_of(lines):
    return [r for r in lines if "event" not in r]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """20 frames at 320x240, then 20 at 640x360, in one MPEG-TS."""
    return write_ts(tmp_path_factory.mktemp("mixed") / "mixed.ts", [pattern_frames(20, 320, 240, 1), pattern_frames(20, 640, 360, 2)])


@pytest.fixture(scope="module")
def short(tmp_path_factory) -> Path:
    """48 frames at 30 fps: three snippets."""
    return write_lossless(tmp_path_factory.mktemp("short") / "short.mp4", pattern_frames(48, seed=11), fps=30)


@pytest.fixture(scope="module")
def mixed_scored(mixed, model, scorer, r50_weights_path, tmp_path_factory):
    """`vad score mixed.ts --no-correction --format json --out DIR`: (result, DIR), run once for the module, with the
    module's loaded Scorer (the same model and weights) rather than a second load."""
    out = tmp_path_factory.mktemp("mixed_scores")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("vad.pipeline.api.load_scorer", lambda **config: dataclasses.replace(scorer, config=dataclasses.replace(
            scorer.config, correction=config.get("correction", True))))
        return vad("score", mixed, *network(model, r50_weights_path), "--no-correction", "--format", "json", "--out", out), out


@pytest.fixture
def loaded(monkeypatch, scorer):
    """`vad watch` on the command line with the module's loaded Scorer instead of loading the model again."""
    monkeypatch.setattr("vad.pipeline.watch._load", lambda cfg: scorer)


@pytest.fixture
def no_model_load(monkeypatch):
    """The model must not load: the fault is found before."""
    def refuse(cfg):
        raise AssertionError("the model was loaded before the fault was reported")
    monkeypatch.setattr("vad.pipeline.watch._load", refuse)


# -- 2. a resolution change mid-stream ----------------------------------------------------------------------
def test_resolution_change_mid_file_vad_score_scores_every_frame(mixed_scored):
    """mixed.ts (20 frames at 320x240, then 20 at 640x360): `vad score --out DIR` exit 0, DIR/mixed.json with 40 frames
    and 3 snippets (it was "all input arrays must have the same shape", exit 1, nothing written)."""
    result, out = mixed_scored
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["events.csv", "index.html", "mixed.json", "summary.csv"]
    record = json.loads((out / "mixed.json").read_text())
    assert record["n_frames"] == 40 and len(record["snippet_scores"]) == 3
    assert all(0 < s < 1 for s in record["snippet_scores"])


def test_resolution_change_mid_file_vad_watch_scores_the_whole_file(mixed, mixed_scored, model, r50_weights_path, loaded):
    """`vad watch mixed.ts`: exit 0, three snippet lines up to frame 40, the raw scores of `vad score` (it scored one
    snippet, then "internal error ... all input arrays must have the same shape", exit 1)."""
    result = vad("watch", mixed, *network(model, r50_weights_path), "--threshold", "1", "--no-correction")
    assert result.exit_code == 0, result.output
    rows = rows_of([json.loads(line) for line in result.stdout.splitlines()])
    assert [(r["frame_start"], r["frame_end"]) for r in rows] == [(0, 16), (16, 32), (32, 40)]
    offline = json.loads((mixed_scored[1] / "mixed.json").read_text())["snippet_scores"]
    assert np.allclose([r["raw"] for r in rows], offline, atol=2e-6, rtol=0)


def test_resolution_change_with_geometry_next_to_the_network(tmp_path):
    """96x64 then 160x90 frames (20 each), resize and crops deferred to the network's device (CUDA's way, run here on
    the CPU): the snippet that holds both sizes is resized and cropped frame by frame in the decode worker, the others
    by the engine; every snippet's ten crops equal those of the CPU path (it failed stacking the two sizes)."""
    from vad.extract.engine import Engine

    clip = write_ts(tmp_path / "small.ts", [pattern_frames(20, 96, 64, 3), pattern_frames(20, 160, 90, 4)])
    geometry = Geometry(short_side=128, crop_size=112)
    plan = SnippetPlan(crops=10, decoder="pyav", geometry=geometry)
    here = list(iter_snippets(clip, plan, VideoSummary()))
    deferred = list(iter_snippets(clip, dataclasses.replace(plan, geometry_on_device=True), VideoSummary()))
    assert [tuple(s.shape) for s in here] == [(10, 16, 112, 112, 3)] * 3
    assert [s.dim() for s in deferred] == [4, 5, 4]  # whole frames, crops (both sizes), whole frames
    engine = Engine.__new__(Engine)  # only its plan matters to the crops
    engine.plan = dataclasses.replace(plan, geometry_on_device=True)
    finished = engine._finish_on_device(deferred)
    assert all(a.shape == b.shape and bool((a == b).all()) for a, b in zip(here, finished))


# -- 3. --on-event programs ------------------------------------------------------------------------------
def test_on_event_output_goes_to_stderr_not_into_the_json_lines(short, scorer, capfd):
    """--on-event 'sh -c "echo to-stdout; echo to-stderr >&2"': every stdout line stays JSON; the program's two
    lines go to vad's stderr (its stdout went into vad's stdout)."""
    program = ["sh", "-c", "cat > /dev/null; echo to-stdout; echo to-stderr >&2"]
    lines = run_watch(short, scorer, threshold=0.0, min_snippets=1, on_event=program)
    assert [e["event"] for e in lines if "event" in e] == ["start", "end"]
    captured = capfd.readouterr()
    assert "to-stdout" not in captured.out
    assert captured.err.count("to-stdout") == 2 and captured.err.count("to-stderr") == 2


def test_on_event_hung_program_is_killed_after_on_event_timeout(short, scorer, caplog):
    """--on-event 'sleep 100' --on-event-timeout 1: killed after 1 s and logged; the watch ends about 1 s after the
    file (it waited 60 s)."""
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="vad"):
        lines = run_watch(short, scorer, threshold=0.0, min_snippets=1, on_event="sleep 100", on_event_timeout=1)
    assert time.monotonic() - started < 10
    assert [e["event"] for e in lines if "event" in e] == ["start", "end"]
    assert caplog.text.count("--on-event sleep: still running after 1 s; killed") == 2


def test_on_event_nonzero_exit_is_logged(short, scorer, caplog):
    """--on-event false: each event's non-zero exit is a warning (it was ignored silently); the watch goes on, exit 0."""
    with caplog.at_level(logging.WARNING, logger="vad"):
        lines = run_watch(short, scorer, threshold=0.0, min_snippets=1, on_event="false")
    assert len(rows_of(lines)) == 3
    assert caplog.text.count("--on-event false: exited with status 1") == 2


def test_on_event_malformed_command_line_exits_2(short, model, r50_weights_path, no_model_load):
    """--on-event 'echo "x': exit 2 naming the missing quote, before the model loads (it was an internal error, exit 1)."""
    result = vad("watch", short, *network(model, r50_weights_path), "--on-event", 'echo "x')
    assert result.exit_code == 2, result.output
    assert "--on-event" in result.stderr and "No closing quotation" in result.stderr and "internal error" not in result.stderr


def test_on_event_missing_program_exits_2_before_the_source_is_opened(model, r50_weights_path, no_model_load):
    """--on-event no-such-program-vad on an unreachable URL: exit 2 naming the program at once (it opened the source,
    and the program was only a warning at each event)."""
    port = free_port()
    started = time.monotonic()
    result = vad("watch", f"http://127.0.0.1:{port}/x.ts", *network(model, r50_weights_path), "--on-event", "no-such-program-vad --flag")
    assert result.exit_code == 2, result.output
    assert "--on-event" in result.stderr and "no-such-program-vad: no such program" in result.stderr
    assert time.monotonic() - started < 5
    with pytest.raises(ConfigError, match="no-such-program-vad: no such program"):
        watch("/nonexistent.mp4", on_event=["no-such-program-vad"], scorer=object(), stdout=io.StringIO(), handle_signals=False)


def test_sigterm_while_a_hook_runs_exits_promptly(short, scorer, tmp_path):
    """--on-event 'sleep 100' (default --on-event-timeout 10 s), SIGTERM once the program runs: watch returns within a
    few seconds of the signal, well before the 10 s hook limit, and the program is killed (SIGTERM was ignored until the program's 60 s were up)."""
    mark = tmp_path / "running"
    program = ["sh", "-c", f"echo $$ > {mark}.tmp; mv {mark}.tmp {mark}; exec sleep 100"]
    received, sent = [], []
    previous = signal.signal(signal.SIGTERM, lambda *_: received.append("pytest"))  # a stray SIGTERM never ends pytest

    def send_when_running():
        deadline = time.monotonic() + 20
        while not mark.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=send_when_running)
    out = io.StringIO()
    try:
        sender.start()
        watch(str(short), scorer=scorer, stdout=out, threshold=0.0, min_snippets=1, on_event=program)
        waited = time.monotonic() - sent[0]  # from the signal: scoring before it takes longer on a busy machine
    finally:
        sender.join()
        signal.signal(signal.SIGTERM, previous)
    assert mark.exists() and not received and waited < 5, (waited, received)
    events = [json.loads(line) for line in out.getvalue().splitlines() if "event" in line]
    assert events[-1]["event"] == "end"
    with pytest.raises(ProcessLookupError):  # the program was killed and reaped
        os.kill(int(mark.read_text()), 0)


def test_sigterm_while_the_model_loads_exits_0(short, model, r50_weights_path):
    """SIGTERM while the model loads (a load that takes 10 s, made so in the child process): exit 0 at once, no
    line on stdout (it was killed by the signal, exit 143)."""
    child = ("import os, signal, time, vad.pipeline.watch as w\n"
             "def slow(cfg):\n    os.kill(os.getpid(), signal.SIGTERM)\n    time.sleep(10)\n    raise SystemExit(3)\n"
             "w._load = slow\nfrom vad.pipeline.cli import main\nmain()\n")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", child, "watch", str(short), *network(model, r50_weights_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "", (proc.returncode, proc.stderr)
    assert time.monotonic() - started < 8  # the child's imports, not the 10 s load
    assert "Traceback" not in proc.stderr


# -- 5. outputs of `vad watch` ---------------------------------------------------------------------------
def test_out_in_a_missing_folder_exits_2_before_the_model_loads(short, tmp_path, model, r50_weights_path, no_model_load):
    """--out missing/w.jsonl: exit 2, one line naming the folder; no file or folder made (it was an internal error
    after the model had loaded)."""
    target = tmp_path / "missing" / "w.jsonl"
    result = vad("watch", short, *network(model, r50_weights_path), "--out", target)
    assert result.exit_code == 2
    assert f"--out {target}: cannot write there" in error_line(result) and "No such file or directory" in result.stderr
    assert not target.parent.exists()


def test_out_on_a_read_only_path_exits_2_before_the_model_loads(short, tmp_path, model, r50_weights_path, no_model_load):
    """--out in a folder this user cannot write (chmod 500, or /sys for root): exit 2, one line, nothing written."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    target = folder / "w.jsonl"
    if os.geteuid() == 0:  # root writes anywhere chmod says no: /sys refuses new files even to root
        target = Path("/sys/vad-watch-test.jsonl")
    try:
        result = vad("watch", short, *network(model, r50_weights_path), "--out", target)
    finally:
        folder.chmod(0o700)
    assert result.exit_code == 2
    assert f"--out {target}: cannot write there" in error_line(result) and "Permission denied" in result.stderr
    assert not target.exists()


def test_out_on_a_full_disk_exits_1_with_one_line(short, model, r50_weights_path, loaded):
    """--out /dev/full: the first line's write fails: exit 1, one line naming --out and the reason (an internal error)."""
    result = vad("watch", short, *network(model, r50_weights_path), "--out", "/dev/full")
    assert result.exit_code == 1
    assert "--out /dev/full: cannot write (No space left on device" in error_line(result)


def closed_pipe_run(args, timeout=60) -> subprocess.CompletedProcess:
    """`args` with stdout a pipe nobody reads any more (as `| head -c 20` once head has exited)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(args, stdout=write, stderr=subprocess.PIPE, text=True, timeout=timeout)
    finally:
        os.close(write)


class ClosedPipe(io.StringIO):
    """A stdout whose reader has gone: every write is EPIPE."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


def test_watch_into_a_closed_pipe_stops_at_the_first_line(short, scorer, tmp_path):
    """`vad watch short.mp4 --out w.jsonl | head -c 20` once head has gone: the watch stops at the first line, ends
    cleanly (signal handlers back, the decode thread gone) and raises BrokenPipeError, which `vad` turns into a quiet
    exit 0 (next test); w.jsonl holds the line that could not be printed, and the pending snippet scored on stopping
    (as on a signal)."""
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(BrokenPipeError):
        watch(str(short), scorer=scorer, stdout=ClosedPipe(), out=tmp_path / "w.jsonl", threshold=1.0)
    assert signal.getsignal(signal.SIGTERM) is before
    assert not [t for t in threading.enumerate() if t.name == "vad-watch-decode"]
    assert [(r["frame_start"], r["frame_end"]) for r in map(json.loads, (tmp_path / "w.jsonl").read_text().splitlines())] == [(0, 16), (16, 32)]


def test_every_command_into_a_closed_pipe_exits_0_quietly():
    """`vad weights list | head -1` once head has gone: exit 0, no message (it was an internal error, exit 1)."""
    proc = closed_pipe_run(VAD + ["weights", "list"])
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


# -- 9. reconnection -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StallingServer:
    """HTTP on 127.0.0.1: each connection gets `body` (an MPEG-TS) and then silence, the socket left open, as a
    camera that stalls; after `serve` connections the port refuses."""

    def __init__(self, body: bytes, serve: int):
        self.body, self.serve, self.connections = body, serve, 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.1)  # accept() looks at `closed` ten times a second
        self.closed = False
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.connections < self.serve and not self.closed:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                request += chunk
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nConnection: close\r\n\r\n" + self.body)
            self.open.append(conn)
        self.listener.close()  # from now on: connection refused

    def close(self):
        self.closed = True
        self.thread.join(timeout=5)
        self.listener.close()
        for conn in self.open:
            conn.close()


def test_reconnect_budget_counts_connections_that_deliver_no_snippet(tmp_path, scorer, caplog):
    """A server that sends 8 frames and stalls, each connection, --reconnect 1 --timeout 0.5: one reconnection, then
    the end (exit 0), no snippet (the budget reset at each reopen: it reconnected until the server gave up)."""
    body = write_ts(tmp_path / "8.ts", [pattern_frames(8, seed=12)]).read_bytes()
    server = StallingServer(body, serve=4)
    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING, logger="vad"):
            lines = run_watch(f"http://127.0.0.1:{server.port}/x.ts", scorer, timeout=0.5, reconnect=1, threshold=1.0)
    finally:
        server.close()
    assert lines == [] and server.connections == 2
    assert "reconnect attempt 1 of 1" in caplog.text and "no snippet since the last drop" in caplog.text
    assert time.monotonic() - started < 15


def test_reconnect_budget_resets_after_a_snippet_and_each_run_ends_at_the_drop(tmp_path, scorer, caplog):
    """A server that sends 24 frames (one snippet) and stalls, three times, then refuses, --reconnect 1: three
    connections, each one snippet; the snippet before each drop is scored as the last of its run (zero padding on
    the right), so all three equal frames get one raw score (it was scored with the next connection's first
    snippet as its right neighbour)."""
    body = write_ts(tmp_path / "24.ts", [pattern_frames(24, seed=13)]).read_bytes()
    server = StallingServer(body, serve=3)
    try:
        with caplog.at_level(logging.WARNING, logger="vad"):
            rows = rows_of(run_watch(f"http://127.0.0.1:{server.port}/x.ts", scorer, timeout=1, reconnect=1, threshold=1.0, correction=False))
    finally:
        server.close()
    assert server.connections == 3 and caplog.text.count("reconnected") == 2
    per_connection = rows[1]["frame_start"]  # frames decoded before the stall: 22 to 24 (the decoder may hold the last two)
    assert 16 <= per_connection <= 24
    assert [(r["frame_start"], r["frame_end"]) for r in rows] == [(k * per_connection, k * per_connection + 16) for k in range(3)]
    assert max(r["raw"] for r in rows) - min(r["raw"] for r in rows) < 1e-6, [r["raw"] for r in rows]
