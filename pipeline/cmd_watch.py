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
    decoded -> score written), dropped_snippets. Events are lines with "event": "start" or "end".
    SIGINT/SIGTERM close an open event and exit 0.

    \b
    vad watch rtsp://cam.local/stream --model run/model.pt --threshold 0.6
    vad watch clip.mp4 --realtime --out scores.jsonl --on-event "notify-send vad"

    Exit codes: 0 ended (file end, signal, source gone after reconnecting), 1 unreachable source,
    2 bad source or options.
    """
    from vad.pipeline.watch import watch as run

    summary = run(source, **settings.given(WatchConfig, options))
    click.echo(json.dumps({"summary": summary}), err=True)
