"""`vad watch`: score a live stream, camera or file causally; one JSON line per snippet and per event."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from vad.pipeline.common import scoring_network, verbosity


@click.command(context_settings={"max_content_width": 150})
@click.argument("source", metavar="SOURCE")
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A model.pt from `vad train` or `vad demo`. Default: the model `vad score` uses (weights/default_model.json ...).")
@click.option("--window", type=click.IntRange(min=3), default=32, show_default=True,
              help="Trailing snippets the detector and the score correction see (>= 3).")
@click.option("--no-lookahead", is_flag=True,
              help="Score each snippet on arrival (zero padding on the right) instead of waiting one snippet for the convolution's neighbour.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="Score that opens an event.")
@click.option("--min-snippets", type=click.IntRange(min=1), default=2, show_default=True,
              help="Snippets in a row at or above the threshold to open an event.")
@click.option("--cooldown", type=click.IntRange(min=1), default=2, show_default=True, help="Snippets in a row below the threshold to close it.")
@click.option("--on-event", default=None, metavar="CMD",
              help="Run CMD (split like a shell line, run without a shell) with each event's JSON on its stdin.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Append every JSON line to this file too.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="Seconds to open the source and to wait for data.")
@click.option("--rtsp-transport", type=click.Choice(["tcp", "udp"]), default="tcp", show_default=True, help="RTSP over TCP (interleaved) or UDP.")
@click.option("--reconnect", type=click.IntRange(min=0), default=5, show_default=True,
              help="Attempts to reopen a network source after a drop (backoff 0.5 s, doubling to 8 s).")
@click.option("--realtime", is_flag=True, help="Files only: pace the frames at the file's frame rate (default: as fast as they decode).")
@click.option("--queue", type=click.IntRange(min=1), default=4, show_default=True,
              help="Snippets waiting for the model; when the model is slower than the stream the oldest are dropped (counted).")
@click.option("--no-correction", is_flag=True, help="Raw detector scores as `score` (the online correction uses the window's top-k).")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Backbone weights file (as `vad score`).")
@click.option("--allow-unverified-weights", is_flag=True, help="Accept backbone weights whose sha256 differs from the model file's.")
@scoring_network
@verbosity
def watch(source, model_path, window, no_lookahead, threshold, min_snippets, cooldown, on_event, out, timeout, rtsp_transport, reconnect,
          realtime, queue, no_correction, device, weights, allow_unverified_weights, precision, exact):
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

    summary = run(source, model_path, window=window, lookahead=not no_lookahead, threshold=threshold, min_snippets=min_snippets,
                  cooldown=cooldown, on_event=shlex.split(on_event) if on_event else None, out=out, timeout=timeout,
                  rtsp_transport=rtsp_transport, reconnect=reconnect, realtime=realtime, queue=queue, correction=not no_correction,
                  device=device, weights=weights, allow_unverified_weights=allow_unverified_weights, precision=precision, exact=exact)
    click.echo(json.dumps({"summary": summary}), err=True)
