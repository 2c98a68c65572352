"""One scored video -> an HTML page that works offline (`vad score --html`), and an index of such pages.

The page (template: pipeline/report.html, plain JavaScript and CSS inline, no library) shows a
browser-playable proxy of the video, the curve on an absolute 0-1 scale with a playhead, a
threshold slider that recomputes the abnormal intervals in the page, the events, the ground
truth when given, and the model's provenance. It makes no network request: the proxy, the CSV
and the JSON sit beside the page (relative links), or inside it as data URIs (`embed`).

The proxy is H.264 (libx264, yuv420p, no B-frames) in MP4, the long side at most 640 px and
both sides even; it holds exactly the curve's frames, frame i at i / fps, so the page's time
and the curve's time are the same clock.

The page's script contract (tests and people who script the page rely on it): elements
`video`, `curve` (its box spans 0..duration_s left to right), `threshold` (a range input) and
`events` (a table, one body row per event); `window.vadReport` holds fps, n_frames,
duration_s, scores, frames_per_point, threshold (the slider's current value) and
events(threshold) -> [{start_frame, end_frame, peak, peak_frame}], runs of frames scoring
strictly above the threshold, end exclusive, as pipeline/plot.py intervals_above.

The page holds the scores rounded up to 4 decimals (the CSV beside it holds 6): rounded up, a
score is above a threshold of at most 4 decimals exactly when its rounded value is, so the
slider's events are the CLI's intervals at every such threshold. A video of more
than PAGE_POINTS frames is drawn from the maximum of each run of frames_per_point frames, so
peaks survive: its scores, readout and events are those of these points (an event starts and
ends on their edges); the CSV, linked from the page, keeps every frame.

`embed` puts the proxy inside the page, up to EMBED_LIMIT_MB: the proxy is encoded to an
unnamed temporary file and its base64 streamed into the page, so memory never holds it whole.
"""
from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import re
import secrets
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import numpy as np

from vad.errors import RunFailure, VadError
from vad.extract.preprocess import CLIP_LEN
from vad.files import atomic_write, atomic_write_bytes
from vad.pipeline.plot import Interval, intervals_above

log = logging.getLogger("vad")

PROXY_LONG_SIDE = 640  # pixels: enough to see what happens, small enough to send
PROXY_CRF = 26  # libx264 quality: a surveillance proxy, not an archive copy
PROXY_GOP_S = 2.0  # a keyframe every 2 s keeps seeks from the curve quick
DEFAULT_THRESHOLD = 0.5  # the page's first threshold when the scorer has none (the paper's)
SPARKLINE_POINTS = 120  # index sparklines: the maximum of each of this many stretches
PAGE_POINTS = 10_000  # a page holds at most this many scores: longer videos keep the maximum of each run of frames
PAGE_DIGITS = 4  # decimals of the scores in the page (the CSV has 6)
EMBED_LIMIT_MB = 50  # --html-embed refuses a proxy larger than this many MB (10**6 bytes)
EMBED_CHUNK = 3 << 16  # bytes of proxy per base64 chunk streamed into an embedded page (a multiple of 3)
TEMPLATE = "report.html"


class ReportError(RunFailure):
    """The report or its proxy could not be written; the message says which file and why."""


class ProxyTooLarge(ReportError):
    """An embedded page's proxy passed EMBED_LIMIT_MB."""


# -- the proxy video ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Proxy:
    width: int
    height: int
    n_frames: int
    rate: Fraction  # frames per second; frame i is shown from i / rate
    repeated: int  # frames the re-decode lacked, filled with the last one so the timing holds


def proxy_size(width: int, height: int, long_side: int = PROXY_LONG_SIDE) -> tuple[int, int]:
    """The proxy's even width and height: the source's aspect, the long side at most `long_side`."""
    scale = min(1.0, long_side / max(width, height))
    return tuple(max(2, 2 * math.floor(side * scale / 2 + 0.5)) for side in (width, height))


def frame_rate(fps: float) -> Fraction:
    """fps as the fraction a container stores (29.97002997... -> 30000/1001)."""
    if not fps > 0 or not math.isfinite(fps):
        raise VadError(f"frame rate {fps!r}: a proxy needs a positive frame rate")
    return Fraction(fps).limit_denominator(100_000)


def encode_proxy(video: Path, n_frames: int, fps: float, handle: BinaryIO, *, decoder: str = "auto", progress: bool = False,
                 max_bytes: int | None = None) -> Proxy:
    """Re-encode `video` into `handle` as the page's H.264 MP4: its first `n_frames` decoded frames
    (upright, as scoring saw them), frame i at i / fps. A re-decode that stops short repeats its
    last frame, so the proxy always has n_frames frames and the curve's timing. The MP4's comment
    is PROXY_MARK, by which a rerun knows the file as vad's. `max_bytes`: stop with ProxyTooLarge
    as soon as `handle` holds more."""
    import av

    from vad.extract.decode import open_video
    from vad.pipeline.outputs import PROXY_MARK
    from vad.progress import progress_bar

    if n_frames < 1:
        raise VadError(f"{video}: a proxy needs at least one frame")
    rate = frame_rate(fps)
    source = open_video(video, decoder)
    width, height = proxy_size(source.width, source.height)
    written, last = 0, None
    with av.open(handle, "w", format="mp4") as container:
        container.metadata["comment"] = PROXY_MARK
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = frame_time = 1 / rate
        # No B-frames: packets come out in display order with pts = frame index, no edit list.
        stream.options = {"preset": "veryfast", "crf": str(PROXY_CRF), "bf": "0", "g": str(max(1, round(PROXY_GOP_S * fps)))}

        def put(image: av.VideoFrame) -> None:
            image.pts = written
            image.time_base = frame_time
            container.mux(stream.encode(image))
            if max_bytes is not None and handle.tell() > max_bytes:
                raise ProxyTooLarge(f"{video}: the proxy passes {max_bytes / 1e6:g} MB")

        with progress_bar(total=n_frames, desc="proxy", unit="frame", disable=not progress, leave=False) as bar:
            for rgb in source:
                last = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(width, height, "yuv420p", interpolation="AREA")
                put(last)
                written += 1
                bar.update()
                if written == n_frames:
                    break
            repeated = n_frames - written
            while written < n_frames:
                put(last)  # at least one frame decoded, or open_video's stream raised DecodeError
                written += 1
                bar.update()
        container.mux(stream.encode())
    if repeated:
        log.warning("%s: the re-decode for the proxy gave %d of %d frames; the last one is repeated", video, n_frames - repeated, n_frames)
    return Proxy(width, height, n_frames, rate, repeated)


# -- the page -------------------------------------------------------------------------------------
def script_json(obj) -> str:
    """JSON safe inside <script>: `<`, `>` and `&` as \\u escapes (no `</script>`, no `<!--`),
    and the line separators JavaScript once rejected."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def href(name: str) -> str:
    """A relative link to `name` (a path relative to the page), percent-encoded part by part."""
    return "/".join(quote(part, safe="") for part in Path(name).parts)


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def report_threshold(scorer) -> float:
    """The page's first threshold: the scorer's (`--threshold`), else DEFAULT_THRESHOLD."""
    threshold = scorer.config.threshold
    return DEFAULT_THRESHOLD if threshold is None else float(threshold)


def slider_step(threshold: float) -> str:
    """0.01, or finer where the starting threshold needs it, so the slider starts exactly on it."""
    for digits in range(2, 7):
        if abs(round(threshold, digits) - threshold) < 1e-12:
            return f"{10.0 ** -digits:.{digits}f}"
    return "any"


def curve_texts(curve, scorer) -> tuple[bytes, bytes]:
    """The CSV and JSON that `vad score` writes for this curve (write_csv, as_json)."""
    from vad.pipeline.score import as_json, write_csv

    buffer = io.StringIO()
    write_csv(curve, buffer)
    return buffer.getvalue().encode(), (json.dumps(as_json(curve, scorer)) + "\n").encode()


def page_files(page: Path) -> dict[str, Path]:
    """What a page writes beside itself unless embedded: <stem>.proxy.mp4, <stem>.csv, <stem>.json."""
    return {"proxy": page.with_name(f"{page.stem}.proxy.mp4"), "csv": page.with_name(f"{page.stem}.csv"),
            "json": page.with_name(f"{page.stem}.json")}


def page_points(values: Iterable[float], limit: int = PAGE_POINTS) -> tuple[int, list[float | None]]:
    """(frames_per_point k, the page's scores): every frame's score for at most `limit` frames,
    else the maximum of each run of k frames (k = ceil(n / limit); peaks survive); rounded up to
    PAGE_DIGITS decimals (so `s > t` holds for the rounded value exactly when it holds for s, for
    every t of at most PAGE_DIGITS decimals); NaN (or a run of NaN) as null, never above a threshold."""
    scores = np.asarray(values, dtype=np.float64).ravel()
    k = max(1, math.ceil(len(scores) / limit))
    if k > 1:
        padded = np.concatenate([scores, np.full(-len(scores) % k, np.nan)]).reshape(-1, k)
        finite = np.isfinite(padded)
        scores = np.where(finite.any(axis=1), np.where(finite, padded, -np.inf).max(axis=1), np.nan)
    scale = 10**PAGE_DIGITS
    # 1e-9: a score that is a grid value (0.51 is 5100.000000000001 times 1e-4 in floats) stays on it
    return k, [math.ceil(float(v) * scale - 1e-9) / scale if math.isfinite(v) else None for v in scores]


def _fmt_value(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt_value(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def _rows(pairs: Iterable[tuple[str, object]]) -> str:
    return "\n".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt_value(v))}</td></tr>" for k, v in pairs)


def _model_rows(curve, scorer) -> str:
    config = scorer.config
    feature = scorer.feature if isinstance(getattr(scorer, "feature", None), dict) else {}
    correction = (f"on: each snippet score s becomes sqrt(s * p), p = {curve.video_score:.4f} (docs/method.md, Score correction)"
                  if config.correction else "off: raw detector scores")
    pairs = [("model", config.model), ("backbone", scorer.spec.name), ("crops", scorer.engine.plan.crops),
             ("profile", feature.get("profile", "reference")), ("score correction", correction),
             ("video score", f"{curve.video_score:.4f} (mean of the top-k raw snippet scores, k = floor(T/16)+1)")]
    provenance = [(f"trained: {key.replace('_', ' ')}", value) for key, value in (scorer.provenance or {}).items()]
    return _rows(pairs + (provenance or [("trained", "the model file records no provenance")]))


def _warnings(curve, scorer, frames_per_point: int = 1) -> str:
    notes = []
    if scorer.trained_on_generated_footage():
        notes.append("This model was trained by <code>vad demo</code> on generated cartoon footage, not on real surveillance "
                     "video: its scores on real footage mean little.")
    if curve.partial:
        notes.append(f"Decoding stopped early: the curve covers the {curve.n_frames} frames that decoded.")
    if frames_per_point > 1:
        notes.append(f"{curve.n_frames} frames: the curve, the readout and the events show the highest score of each "
                     f"{frames_per_point} frames (events start and end on those steps); the CSV holds every frame's score.")
    return "\n".join(f'<p class="warning">{note}</p>' for note in notes)


def render_page(curve, scorer, *, video_src: str, csv: tuple[str, str], json_link: tuple[str, str], gt: Sequence[Interval] | None,
                proxy: Proxy) -> str:
    """The page's HTML. `video_src`, `csv` and `json_link` are URLs (relative or data:) with their download names."""
    threshold = report_threshold(scorer)
    duration = curve.n_frames / curve.fps
    name = curve.path.name
    frames_per_point, points = page_points(curve.frame_scores)
    data = {"name": name, "fps": curve.fps, "n_frames": curve.n_frames, "duration_s": duration, "snippet_frames": CLIP_LEN,
            "threshold": threshold, "scores": points, "frames_per_point": frames_per_point, "video_score": curve.video_score,
            "gt": [[int(s), int(e)] for s, e in (gt or [])], "correction": bool(scorer.config.correction)}
    facts = [f"{curve.n_frames} frames", f"{curve.fps:.3f} fps", f"{duration:.2f} s", f"video score {curve.video_score:.3f}",
             f"score correction {'on' if scorer.config.correction else 'off'}", f"proxy {proxy.width}x{proxy.height}"]
    if gt is not None:
        facts.append(f"{len(gt)} ground-truth interval(s)")
    values = {
        "title": html.escape(name), "name": html.escape(name), "path": html.escape(str(curve.path)),
        "facts": html.escape(" · ".join(facts)), "warnings": _warnings(curve, scorer, frames_per_point),
        "video_src": html.escape(video_src, quote=True), "width": str(proxy.width), "height": str(proxy.height),
        "csv_href": html.escape(csv[0], quote=True), "csv_name": html.escape(csv[1], quote=True),
        "json_href": html.escape(json_link[0], quote=True), "json_name": html.escape(json_link[1], quote=True),
        "threshold": repr(threshold), "step": slider_step(threshold), "threshold_text": f"{threshold:.2f}",
        "gt_legend": "" if gt is None else '<span class="key gt"></span> ground truth',
        "model_rows": _model_rows(curve, scorer), "data": script_json(data),
    }
    return fill(_template(TEMPLATE), values)


def fill(template: str, values: dict[str, str]) -> str:
    """Replace each {{key}} in one pass (a value is never scanned again), every key used."""
    missing = sorted(set(re.findall(r"\{\{(\w+)\}\}", template)) - set(values))
    if missing:
        raise KeyError(f"template keys without a value: {', '.join(missing)}")
    return re.sub(r"\{\{(\w+)\}\}", lambda match: values[match.group(1)], template)


def _template(name: str) -> str:
    return resources.files("vad.pipeline").joinpath(name).read_text(encoding="utf-8")


def write_report(curve, scorer, path: str | Path, *, gt: Sequence[Interval] | None = None, embed: bool = False,
                 csv_name: str | None = None, json_name: str | None = None, progress: bool = False) -> Path:
    """Write the page of one scored video (a Curve from `scorer.score`) to `path`; returns the path.

    Beside the page: `<stem>.proxy.mp4` and, unless `csv_name` / `json_name` name files already
    there (paths relative to the page), `<stem>.csv` and `<stem>.json` as `vad score` writes
    them. `embed=True` puts the proxy, CSV and JSON inside the page instead: one file to send,
    refused (ProxyTooLarge, nothing written) when the proxy passes EMBED_LIMIT_MB.
    `gt`: ground-truth [start, end) frame intervals to draw (None: none known).
    A file in the way that vad did not write (pipeline/outputs.py) is refused before any work.
    """
    import av

    from vad.pipeline.outputs import Output, check_overwrite

    page = Path(path)
    started = time.perf_counter()
    files = page_files(page)
    source = curve.path.resolve()
    for what, target in (("page", page), *((k, v) for k, v in files.items() if not embed)):
        if target.resolve() == source:
            raise VadError(f"{target}: the report's {what} would overwrite the video it reports on; choose another page name")
    mine = {"page": page}
    if not embed:
        mine["proxy"] = files["proxy"]
        mine.update({kind: files[kind] for kind, given in (("csv", csv_name), ("json", json_name)) if given is None})
    for kind, target in mine.items():
        check_overwrite(Output(target, f"report {kind}", kind, curve.path, "page name"))
    csv_bytes, json_bytes = curve_texts(curve, scorer)
    decoder = scorer.config.decoder
    try:
        if embed:
            csv_link = (data_uri("text/csv", csv_bytes), files["csv"].name)
            json_link = (data_uri("application/json", json_bytes), files["json"].name)
            proxy = _write_embedded(curve, scorer, page, csv_link, json_link, gt=gt, progress=progress)
        else:
            holder: list[Proxy] = []
            atomic_write(files["proxy"], lambda handle: holder.append(
                encode_proxy(curve.path, curve.n_frames, curve.fps, handle, decoder=decoder, progress=progress)))
            proxy = holder[0]
            video_src = href(files["proxy"].name)
            if csv_name is None:
                atomic_write_bytes(files["csv"], csv_bytes)
            if json_name is None:
                atomic_write_bytes(files["json"], json_bytes)
            csv_link = (href(csv_name or files["csv"].name), Path(csv_name or files["csv"].name).name)
            json_link = (href(json_name or files["json"].name), Path(json_name or files["json"].name).name)
            text = render_page(curve, scorer, video_src=video_src, csv=csv_link, json_link=json_link, gt=gt, proxy=proxy)
            atomic_write_bytes(page, text.encode("utf-8"))
    except ProxyTooLarge:
        raise ProxyTooLarge(f"{page}: the proxy of {curve.path} passes {EMBED_LIMIT_MB} MB, too large for --html-embed; "
                            f"without --html-embed the page links it as {files['proxy'].name} beside it") from None
    except OSError as exc:
        raise ReportError(f"{page}: cannot write the report ({exc.strerror or exc})") from None
    except av.FFmpegError as exc:  # the encoder or muxer refused (no libx264 in this PyAV build, a frame it cannot take)
        raise ReportError(f"{page}: cannot encode the proxy video of {curve.path} ({exc})") from None
    log.info("%s: report %s (%.1f KiB, proxy %dx%d, %.1f s)", curve.path, page, page.stat().st_size / 1024, proxy.width, proxy.height,
             time.perf_counter() - started)
    return page


def _write_embedded(curve, scorer, page: Path, csv_link: tuple[str, str], json_link: tuple[str, str], *, gt, progress: bool) -> Proxy:
    """The embedded page: the proxy encoded to an unnamed temporary file beside the page (gone
    whatever happens), then the page written with the proxy's base64 streamed in chunks, so
    memory holds a chunk of the proxy, never the whole of it."""
    page.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=page.parent) as encoded:
        proxy = encode_proxy(curve.path, curve.n_frames, curve.fps, encoded, decoder=scorer.config.decoder, progress=progress,
                             max_bytes=EMBED_LIMIT_MB * 10**6)
        token = f"vad-proxy-{secrets.token_hex(16)}"  # where the data URI goes; nothing else in the page can hold it
        head, tail = render_page(curve, scorer, video_src=token, csv=csv_link, json_link=json_link, gt=gt, proxy=proxy).split(token)

        def write(handle: BinaryIO) -> None:
            handle.write(head.encode("utf-8"))
            handle.write(b"data:video/mp4;base64,")
            encoded.seek(0)
            while chunk := encoded.read(EMBED_CHUNK):
                handle.write(base64.b64encode(chunk))
            handle.write(tail.encode("utf-8"))

        atomic_write(page, write)
    return proxy


# -- the index of pages ---------------------------------------------------------------------------
@dataclass(frozen=True)
class IndexEntry:
    """One scored video on the index page."""

    name: str  # what the index shows: the video's file name
    page: Path  # its report page
    n_frames: int
    fps: float
    video_score: float
    threshold: float
    n_events: int  # intervals above `threshold`, as the page first shows them
    sparkline: tuple[float, ...]  # the curve, shortened to at most SPARKLINE_POINTS maxima

    @classmethod
    def of(cls, curve, page: Path, threshold: float) -> IndexEntry:
        return cls(curve.path.name, Path(page), curve.n_frames, curve.fps, float(curve.video_score), float(threshold),
                   len(intervals_above(curve.frame_scores, threshold)), sparkline_points(curve.frame_scores))


def sparkline_points(scores: np.ndarray, n: int = SPARKLINE_POINTS) -> tuple[float, ...]:
    """The maximum of each of at most `n` equal stretches of the curve, so short peaks stay visible."""
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    if len(scores) <= n:
        return tuple(round(float(s), 4) for s in scores)
    edges = np.linspace(0, len(scores), n + 1).astype(int)
    return tuple(round(float(scores[a:b].max()), 4) for a, b in zip(edges[:-1], edges[1:]))


def sparkline_svg(points: Sequence[float], threshold: float, width: int = 160, height: int = 32) -> str:
    """An inline SVG of the curve on the absolute 0-1 scale, with the threshold dashed."""
    n = len(points)
    step = width / max(n, 1)
    coords = []
    for k, value in enumerate(points):  # a step per point, as the page draws the curve
        y = height - min(max(value, 0.0), 1.0) * height
        coords += [f"{k * step:.1f},{y:.1f}", f"{(k + 1) * step:.1f},{y:.1f}"]
    level = height - min(max(threshold, 0.0), 1.0) * height
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="anomaly curve"><rect width="{width}" height="{height}" class="bg"/>'
            f'<line x1="0" x2="{width}" y1="{level:.1f}" y2="{level:.1f}" class="thr"/>'
            f'<polyline points="{" ".join(coords)}" class="line"/></svg>')


def write_index(entries: Sequence[IndexEntry], path: str | Path, *, failures: Sequence[tuple[str, str]] = (), title: str = "vad report") -> Path:
    """An index page linking each entry's page (relative), with its video score, event count and
    a sparkline; `failures` are (video, reason) pairs of videos that could not be scored."""
    index = Path(path)
    rows = []
    for entry in entries:
        try:
            link = entry.page.resolve().relative_to(index.parent.resolve()).as_posix()
        except ValueError:
            link = entry.page.resolve().as_uri()
        rows.append(
            f'<tr><td><a href="{html.escape(href(link) if not link.startswith("file:") else link, quote=True)}">{html.escape(entry.name)}</a></td>'
            f'<td class="num">{entry.n_frames / entry.fps:.2f} s</td><td class="num">{entry.video_score:.3f}</td>'
            f'<td class="num">{entry.n_events}</td><td>{sparkline_svg(entry.sparkline, entry.threshold)}</td></tr>')
    failed = "".join(f"<li>{html.escape(str(video))}: {html.escape(str(reason))}</li>" for video, reason in failures)
    thresholds = sorted({entry.threshold for entry in entries})
    values = {
        "title": html.escape(title),
        "summary": html.escape(f"{len(entries)} video(s) scored" + (f", {len(failures)} failed" if failures else "")
                               + (f"; events are runs of frames scoring above {', '.join(f'{t:g}' for t in thresholds)}" if thresholds else "")),
        "rows": "\n".join(rows) or '<tr><td colspan="5">no video was scored</td></tr>',
        "failures": f"<h2>Could not be scored</h2><ul>{failed}</ul>" if failed else "",
    }
    try:
        atomic_write_bytes(index, fill(_template("report_index.html"), values).encode("utf-8"))
    except OSError as exc:
        raise ReportError(f"{index}: cannot write the index ({exc.strerror or exc})") from None
    return index
