"""`vad watch`: causal live scoring of files and 127.0.0.1 streams (HTTP MPEG-TS, UDP MPEG-TS), events, drops, signals.

The detector is an untrained no-attention ARMSDetector (hidden width 64, its last layer scaled so scores sit
mid-range), the backbone i3d-r50 with the generated weights at 112-pixel crops: about 0.1 s per snippet on a CPU.
"""
from __future__ import annotations

import io
import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vad.models.correction import video_level_score
from vad.pipeline.cli import main
from vad.pipeline.score import ScoreConfig, Scorer
from vad.pipeline.watch import Events, WatchConfig, watch

from cheap_model import write_cheap_r50_model
from videos import pattern_frames, write_lossless

FIELDS = ["frame_start", "frame_end", "t_start_s", "t_end_s", "wallclock", "score", "raw", "latency_ms", "dropped_snippets"]


@pytest.fixture(scope="module")
def model(tmp_path_factory, r50_weights_path) -> Path:
    return write_cheap_r50_model(tmp_path_factory.mktemp("model") / "watch.pt", r50_weights_path)


@pytest.fixture(scope="module")
def scorer(model, r50_weights_path):
    return Scorer.from_config(ScoreConfig(model=model, weights=r50_weights_path, device="cpu", batch_size=1, decoder="pyav"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """84 frames at 30 fps: six snippets, the last one 4 frames padded."""
    return write_lossless(tmp_path_factory.mktemp("videos") / "clip.mp4", pattern_frames(84, seed=3), fps=30)


def run_watch(source, scorer, **config) -> list[dict]:
    out = io.StringIO()
    watch(str(source), scorer=scorer, stdout=out, handle_signals=False, **config)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def snippets_of(lines):
    return [r for r in lines if "event" not in r]


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_file_matches_offline_scores_fields_and_out(tmp_path, clip, model, scorer, r50_weights_path):
    offline = CliRunner().invoke(main, ["score", str(clip), "--model", str(model), "--weights", str(r50_weights_path), "--device", "cpu",
                                        "--no-correction", "--format", "json", "-q"])
    assert offline.exit_code == 0, offline.output
    expected = json.loads(offline.stdout)["snippet_scores"]
    jsonl = tmp_path / "w.jsonl"
    jsonl.write_text("")
    lines = run_watch(clip, scorer, window=4, threshold=1.0, out=jsonl)
    rows = snippets_of(lines)
    assert [list(r) for r in rows] == [FIELDS] * 6
    assert [(r["frame_start"], r["frame_end"]) for r in rows] == [(16 * i, min(16 * i + 16, 84)) for i in range(6)]
    assert [r["t_end_s"] for r in rows] == pytest.approx([min(16 * i + 16, 84) / 30 for i in range(6)], abs=1e-6)
    assert all(r["dropped_snippets"] == 0 and r["latency_ms"] >= 0 for r in rows)
    # the no-attention detector on a trailing window with one snippet of lookahead: the offline raw scores
    assert np.allclose([r["raw"] for r in rows], expected, atol=2e-6, rtol=0), ([r["raw"] for r in rows], expected)
    assert len(set(expected)) > 3 and 0.05 < min(expected) and max(expected) < 0.95
    # online correction: sqrt(raw * top-k mean of the trailing window's raw scores)
    raws = [r["raw"] for r in rows]
    for i, r in enumerate(rows):
        assert r["score"] == pytest.approx(np.sqrt(raws[i] * video_level_score(np.array(raws[max(0, i - 3):i + 1]))), abs=2e-6)
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == lines  # --out appends the same lines
    # no lookahead: scored on arrival, zero padding on the right; the last snippet's score is the same
    early = snippets_of(run_watch(clip, scorer, window=4, threshold=1.0, lookahead=False, correction=False))
    assert len(early) == 6 and early[-1]["raw"] == pytest.approx(expected[-1], abs=2e-6)


def test_events_open_close_and_on_event(tmp_path, clip, scorer):
    sink = tmp_path / "events.jsonl"
    program = [sys.executable, "-c", f"import sys; open({str(sink)!r}, 'a').write(sys.stdin.read())"]
    lines = run_watch(clip, scorer, threshold=0.0, min_snippets=2, on_event=program)
    events = [r for r in lines if "event" in r]
    assert [e["event"] for e in events] == ["start", "end"]
    assert lines.index(events[0]) == 2  # after the second snippet at or above the threshold
    assert events[0]["frame_start"] == 0 and events[1]["frame_end"] == 84 and events[1]["reason"] == "end of watch"
    assert events[1]["peak"] == pytest.approx(max(r["score"] for r in snippets_of(lines)), abs=1e-6)
    assert [json.loads(line) for line in sink.read_text().splitlines()] == events

    emitted = []
    tracker = Events(WatchConfig(threshold=0.5, min_snippets=2, cooldown=2), emitted.append)
    scores = [0.9, 0.1, 0.6, 0.7, 0.8, 0.2, 0.9, 0.1, 0.2, 0.3, 0.9]
    for i, s in enumerate(scores):
        tracker.update({"frame_start": 16 * i, "frame_end": 16 * i + 16, "t_start_s": i, "t_end_s": i + 1, "wallclock": str(i), "score": s})
    assert [(e["event"], e["frame_start"], e.get("frame_end"), e["peak"]) for e in emitted] == [("start", 32, None, 0.7), ("end", 32, 112, 0.9)]


def test_slow_model_drops_oldest_first_bounded(tmp_path, scorer):
    """A 120 fps realtime file (a snippet every 0.13 s) against 0.5 s per snippet: the queue of 1 drops, counted."""
    fast = write_lossless(tmp_path / "fast.mp4", pattern_frames(96, seed=5), fps=120)
    rows = snippets_of(run_watch(fast, scorer, realtime=True, queue=1, _delay=0.5, threshold=1.0))
    dropped = rows[-1]["dropped_snippets"]
    assert dropped >= 2 and len(rows) + dropped == 6
    assert [r["dropped_snippets"] for r in rows] == sorted(r["dropped_snippets"] for r in rows)
    starts = [r["frame_start"] for r in rows]
    assert starts == sorted(starts) and starts[0] == 0 and starts[-1] == 80  # the newest snippet is never the one dropped


def test_sigterm_closes_the_open_event_and_exits_0(tmp_path, model, r50_weights_path):
    long = write_lossless(tmp_path / "long.mp4", pattern_frames(160, seed=6), fps=30)
    cmd = [sys.executable, "-c", "from vad.pipeline.cli import main; main()", "watch", str(long), "--model", str(model), "--weights",
           str(r50_weights_path), "--device", "cpu", "--realtime", "--threshold", "0", "--min-snippets", "1", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(json.loads(line))
            if lines[-1].get("event") == "start":
                break
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    lines += [json.loads(line) for line in rest.splitlines()]
    assert proc.returncode == 0, err
    assert lines[-1]["event"] == "end" and lines[-1]["reason"] == "end of watch"
    assert lines[-1]["frame_end"] < 160  # stopped early, by the signal


def test_http_mpegts_then_server_killed_reconnects_and_ends(tmp_path, scorer, caplog):
    import imageio_ffmpeg

    clip = write_lossless(tmp_path / "net.mp4", pattern_frames(96, seed=7), fps=30)
    port = free_port()
    server = subprocess.Popen([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-re", "-i", str(clip), "-c", "copy", "-f", "mpegts",
                               "-listen", "1", f"http://127.0.0.1:{port}/x.ts"], stdin=subprocess.DEVNULL)

    class KillAtFirstLine(io.StringIO):  # the server dies mid-stream, once the first score is out
        def write(self, text):
            server.kill()
            return super().write(text)

    out = KillAtFirstLine()
    try:
        with caplog.at_level(logging.WARNING, logger="vad"):
            started = time.monotonic()
            watch(f"http://127.0.0.1:{port}/x.ts", scorer=scorer, stdout=out, handle_signals=False, timeout=2, reconnect=2, threshold=1.0)
    finally:
        server.kill()
        server.wait()
    rows = snippets_of([json.loads(line) for line in out.getvalue().splitlines()])
    assert 1 <= len(rows) < 6 and rows[0]["frame_start"] == 0 and rows[0]["t_end_s"] == pytest.approx(16 / 30, abs=1e-6)
    assert "stream dropped" in caplog.text and "reconnect attempt 2 of 2" in caplog.text  # the server is gone: attempts, then the end
    assert "could not be reopened" in caplog.text and time.monotonic() - started < 20


def test_udp_mpegts_push(tmp_path, scorer):
    import imageio_ffmpeg

    clip = write_lossless(tmp_path / "udp.mp4", pattern_frames(64, seed=8), fps=30)
    port = free_port(socket.SOCK_DGRAM)
    push = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-re", "-i", str(clip), "-c", "copy", "-f", "mpegts",
            f"udp://127.0.0.1:{port}?pkt_size=1316"]
    pushers = []
    later = threading.Timer(1.0, lambda: pushers.append(subprocess.Popen(push, stdin=subprocess.DEVNULL)))  # once watch listens
    later.start()
    try:
        rows = snippets_of(run_watch(f"udp://127.0.0.1:{port}", scorer, timeout=3, reconnect=0, threshold=1.0))
    finally:
        later.cancel()
        later.join()
        for pusher in pushers:
            pusher.kill()
            pusher.wait()
    assert len(rows) >= 2 and [r["frame_end"] - r["frame_start"] for r in rows] == [16] * len(rows)


# An RTSP server from Debian's GStreamer packages (.ci/run installs them): the file's H.264, packetised, over TCP.
RTSP_SERVER = """
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(sys.argv[1])
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(f"( filesrc location={sys.argv[2]} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )")
server.get_mount_points().add_factory("/x", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
"""
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3-gi lives there, not in the venv


def test_rtsp_over_tcp(tmp_path, scorer):
    probe = [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0')"]
    if not Path(SYSTEM_PYTHON).exists() or subprocess.run(probe, capture_output=True).returncode != 0:
        pytest.skip("no GStreamer RTSP server (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good)")
    clip = write_lossless(tmp_path / "rtsp.mp4", pattern_frames(64, seed=9), fps=30)
    (tmp_path / "serve.py").write_text(RTSP_SERVER)
    port = free_port()
    server = subprocess.Popen([SYSTEM_PYTHON, str(tmp_path / "serve.py"), str(port), str(clip)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        rows = snippets_of(run_watch(f"rtsp://127.0.0.1:{port}/x", scorer, rtsp_transport="tcp", timeout=3, reconnect=0, threshold=1.0))
    finally:
        server.kill()
        server.wait()
    assert [(r["frame_start"], r["frame_end"]) for r in rows] == [(16 * i, 16 * i + 16) for i in range(4)]


def test_bad_source_exits_2_unreachable_exits_1(model, r50_weights_path):
    common = ["--model", str(model), "--weights", str(r50_weights_path), "--device", "cpu", "-q"]
    for source, why in [("ftp://127.0.0.1/x.ts", "cannot read 'ftp' URLs"), ("/nonexistent/clip.mp4", "no such file")]:
        result = CliRunner().invoke(main, ["watch", source, *common])
        assert result.exit_code == 2 and why in result.stderr, result.output
        assert result.stderr.startswith("vad: error: ") and len(result.stderr.strip().splitlines()) == 1
    port = free_port()  # nothing listens there
    started = time.monotonic()
    result = CliRunner().invoke(main, ["watch", f"http://127.0.0.1:{port}/x.ts", *common, "--timeout", "1", "--reconnect", "1"])
    assert result.exit_code == 1 and "could not be opened" in result.stderr and "after 2 attempt(s)" in result.stderr, result.output
    assert time.monotonic() - started < 15


def test_a_server_that_never_answers_exits_1_after_the_timeout(model, r50_weights_path):
    """A port that accepts the connection and then says nothing: only the read timeout ends the wait."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes connections; nobody ever reads or writes
    port = silent.getsockname()[1]
    try:
        started = time.monotonic()
        result = CliRunner().invoke(main, ["watch", f"http://127.0.0.1:{port}/x.ts", "--model", str(model), "--weights",
                                           str(r50_weights_path), "--device", "cpu", "-q", "--timeout", "2", "--reconnect", "0"])
        waited = time.monotonic() - started
    finally:
        silent.close()
    assert result.exit_code == 1 and "could not be opened" in result.stderr, result.output
    assert 1.5 <= waited < 30, waited
