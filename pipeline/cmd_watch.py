"""`vad watch`: score a live stream, camera or file causally; one JSON line per snippet and per event."""
from __future__ import annotations

import json

import click

from vad import settings
from vad.pipeline.common import verbosity
from vad.pipeline.watch import WatchConfig


@click.command(context_settings={"max_content_width": 150})
@click.argument("source", metavar="SOURCE")
@settings.options(WatchConfig)
@verbosity
def watch(source, **options):
    """Score a live source as it plays: one JSON line per 16-frame snippet on stdout.

    SOURCE: rtsp://, http(s):// (MPEG-TS, HLS) or udp:// URL, a V4L2 camera (/dev/video0) or a file.
    Each line: frame_start, frame_end, t_start_s, t_end_s, wallclock, score, raw, latency_ms (last frame
    decoded -> score written), dropped_snippets. Events are lines with "event": "start" or "end";
    --on-event programs print to stderr and are killed after --on-event-timeout. SIGINT/SIGTERM
    close an open event and exit 0, also while the model loads or an --on-event program runs.

    \b
    vad watch rtsp://cam.local/stream --model run/model.pt --threshold 0.6
    vad watch clip.mp4 --realtime --out scores.jsonl --on-event "notify-send vad"

    Exit codes: 0 ended (file end, signal, source gone after reconnecting, stdout closed), 1 unreachable
    source or a failed write of --out or stdout, 2 bad source or options (an --on-event program that is
    not there, an --out that cannot be written: found before the model loads).
    """
    from vad.pipeline.watch import watch as run

    summary = run(source, **settings.given(WatchConfig, options))
    click.echo(json.dumps({"summary": summary}), err=True)
