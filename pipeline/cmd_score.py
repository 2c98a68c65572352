"""`vad score`: raw videos -> frame-level anomaly curves (CSV or JSON), optional plots and intervals."""
from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from vad import settings
from vad.errors import RunFailure, VadError
from vad.pipeline.common import progress_disabled, verbosity
from vad.pipeline.report import EMBED_LIMIT_MB
from vad.pipeline.score import ScoreConfig

log = logging.getLogger("vad")


def plot_target(plot: str | None, videos: list[Path]) -> Path | None:
    """--plot X.png names the file (one video); any other path is a folder of <stem>.png."""
    if plot is None:
        return None
    target = Path(plot)
    if target.suffix.lower() == ".png" and len(videos) > 1:
        raise VadError(f"--plot {plot}: one PNG file for {len(videos)} videos; pass a folder to get one <stem>.png per video")
    return target


def plot_path(target: Path, video: Path) -> Path:
    return target if target.suffix.lower() == ".png" else target / f"{video.stem}.png"


def html_target(html: str | None, videos: list[Path], embed: bool) -> Path | None:
    """--html X.html names the page (one video); any other path is a folder of <stem>.html plus index.html."""
    if html is None:
        if embed:
            raise VadError("--html-embed puts the video inside the page: pass --html PATH too")
        return None
    target = Path(html)
    if is_page(target):
        if len(videos) > 1:
            raise VadError(f"--html {html}: one page for {len(videos)} videos; pass a folder to get <stem>.html per video and index.html")
    else:
        named_index = [str(v) for v in videos if v.stem.lower() == "index"]
        if named_index:
            raise VadError(f"--html {html}: {named_index[0]} would be written as {target / 'index.html'}, the folder's index page; "
                           f"rename the video or pass --html PAGE.html")
    return target


@dataclass
class Pages:
    """What --html asks for: the page or folder, whether to embed, the ground truth (None: no --gt), the index so far."""

    target: Path
    embed: bool
    gt: dict | None
    entries: list = field(default_factory=list)


def is_page(target: Path) -> bool:
    return target.suffix.lower() in (".html", ".htm")


def html_path(target: Path, video: Path) -> Path:
    return target if is_page(target) else target / f"{video.stem}.html"


def check_videos(videos: list[Path], out: Path | None, plot: Path | None, html: Path | None = None) -> None:
    from vad.extract.inputs import missing_file_reason

    missing = [f"{v}: {missing_file_reason(v)}" for v in videos if not v.is_file()]
    if missing:
        raise VadError(f"cannot read video: {'; '.join(missing)}")
    if len(videos) > 1 and out is None:
        raise VadError(f"{len(videos)} videos: pass --out DIR to get one file per video (stdout holds one curve)")
    folders = [plot is not None and plot.suffix.lower() != ".png", html is not None and not is_page(html)]
    if out is not None or any(folders):
        stems: dict[str, Path] = {}
        for video in videos:
            if video.stem in stems and stems[video.stem] != video:
                raise VadError(f"{stems[video.stem]} and {video} would both be written as {video.stem}.*; rename one or score them separately")
            stems[video.stem] = video


@click.command()
@click.argument("videos", nargs=-1, type=click.Path(path_type=Path), metavar="VIDEO...")
@settings.options(ScoreConfig)
@click.option("--format", "output_format", type=click.Choice(["csv", "json"]), default="csv", show_default=True,
              help="csv: `frame,time_s,score`, one row per decoded frame. json: per-frame and per-snippet scores, fps, n_frames, video_score (mean "
                   "of the top-k raw snippet scores, k = floor(T/16)+1, as in the score correction) and the abnormal intervals.")
@click.option("--plot", default=None, metavar="PATH",
              help="Draw the curve with threshold, intervals and thumbnails of peaks and calm moments: PATH.png for one video, or a folder that gets "
                   "<stem>.png per video. Default: no plot.")
@click.option("--gt", "gt_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Ground truth CSV `video,start_frame,end_frame` (end exclusive) to draw on the plots and report pages; a row's video id matches a "
                   "file by its last path parts without the suffix (`abnormal/fight_002` matches `clips/abnormal/fight_002.mp4`).")
@click.option("--html", "html", default=None, metavar="PATH",
              help="Write an HTML report that works offline (video, curve, threshold slider, events, provenance): PATH.html for one video, or a "
                   "folder that gets <stem>.html per video and index.html. Beside each page: <stem>.proxy.mp4 (H.264, long side at most 640 px), "
                   "<stem>.csv and <stem>.json, which the page links. Default: no report.")
@click.option("--html-embed", is_flag=True,
              help=f"Put the proxy video, the CSV and the JSON inside each page (data URIs): one file to send, larger. Needs --html. A "
                   f"proxy over {EMBED_LIMIT_MB} MB is refused (that video fails, nothing is written for its page): without --html-embed "
                   f"the page links it beside itself.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write OUT/<stem>.csv (or .json) per video instead of stdout; needed for several videos. A video that fails is reported and the "
                   "others go on (exit 1 at the end).")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="CACHE",
              help="Score videos already in this feature cache, without decoding: the arguments are ids (none: every entry), outputs "
                   "OUT/<id>.csv|.json. The cache's backbone, weights, crops, profile and geometry must be the model's.")
@verbosity
def score(videos, *, output_format, plot, gt_path, html, html_embed, out_dir, cache_dir, **options):
    """Score raw videos with a trained detector: one anomaly score per frame.

    The backbone, crops and preprocessing come from the model file; a video is decoded,
    cut into 16-frame snippets, run through that backbone and the detector, and each frame
    gets its snippet's score (time_s = frame / fps). Score correction is on by default.

    \b
    vad score clip.mp4 > scores.csv
    vad score clip.mp4 --format json --threshold 0.5 --plot clip.png
    vad score a.mp4 b.mp4 --out scores/ --plot scores/
    vad score clip.mp4 --threshold 0.5 --html clip.html    # open clip.html in a browser
    vad score a.mp4 b.mp4 --out scores/ --html report/    # report/index.html lists the pages
    vad score --cache cache/ --out scores/                  # every video in a feature cache

    Exit codes: 0 all scored, 1 some video failed, 2 bad command line or a model that does
    not fit its backbone weights.
    """
    from vad.pipeline.api import load_scorer
    from vad.pipeline.outputs import settle
    from vad.pipeline.score import generated_footage_warning
    from vad.tables import read_gt

    if cache_dir is not None:  # ids in a feature cache (pipeline/score_cache.py)
        from vad.pipeline.score_cache import score_cache

        return score_cache(cache_dir, [str(v) for v in videos], output_format=output_format, out_dir=out_dir,
                           scoring=settings.given(ScoreConfig, options),
                           refused={"--plot": plot, "--gt": gt_path, "--html": html, "--html-embed": html_embed})
    if not videos:
        raise click.UsageError("Missing argument 'VIDEO...' (or --cache CACHE).")
    videos = list(videos)
    target = plot_target(plot, videos)
    pages = html_target(html, videos, html_embed)
    check_videos(videos, out_dir, target, pages)
    # every output checked before the work: no input or user's file overwritten, every file writable
    videos = settle(videos, out=out_dir, output_format=output_format, plot=target, pages=pages, embed=html_embed)
    from vad.pipeline.archive import Archive, check_outputs

    check_outputs(videos, out_dir, output_format, pages)  # OUT/summary.csv and OUT/events.csv (pipeline/archive.py)
    gt = read_gt(gt_path) if gt_path is not None else {}
    scorer = load_scorer(**settings.given(ScoreConfig, options))
    if scorer.trained_on_generated_footage():
        click.echo(generated_footage_warning(scorer), err=True)

    started = time.perf_counter()
    scored, failed = [], []
    report = None if pages is None else Pages(pages, html_embed, gt if gt_path is not None else None)
    from vad.pipeline.report import report_threshold

    index_page = pages / "index.html" if pages is not None and not is_page(pages) else None
    archive = Archive(report_threshold(scorer), out=out_dir, index=index_page) if out_dir is not None or index_page is not None else None
    for video in videos:
        try:
            written = _score_one(scorer, video, output_format, out_dir=out_dir, target=target, gt=gt, report=report, archive=archive)
        except Exception as exc:  # one broken video must not stop the others
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.error("vad: %s", message if str(video) in message else f"{video}: {message}")
            failed.append({"video": str(video), "error": message})
            if archive is not None:
                archive.add_failure(video, message)
            continue
        scored.append(written)
    archived = {} if archive is None else archive.finish()  # summary.csv, events.csv, the archive page index.html
    index = archived.get("index")
    if index is not None:
        log.info("report: %s", index)
    if out_dir is not None:
        click.echo(json.dumps({"out": str(out_dir), "scored": len(scored), "failed": len(failed), "files": scored,
                               "failures": failed, **{key: str(path) for key, path in archived.items()},
                               "seconds": round(time.perf_counter() - started, 2)}))
    if failed:
        raise RunFailure(f"{len(failed)} of {len(videos)} video(s) could not be scored: {', '.join(f['video'] for f in failed)}")
    if archive is not None:
        archive.raise_problems()  # OUT/summary.csv, OUT/events.csv or the archive page could not be written


def _score_one(scorer, video: Path, output_format: str, *, out_dir: Path | None, target: Path | None, gt: dict, report: Pages | None,
               archive=None) -> dict:
    """Score, write the curve (stdout or OUT/<stem>.<format>), the plot and the report page; returns what was written."""
    from vad.files import atomic_write_bytes
    from vad.pipeline.score import as_json, describe_intervals, gt_for_video, plot_scores, write_csv

    result = scorer.score(video, progress=not progress_disabled())
    log.info("%s: %d frames at %.3f fps, video score %.3f%s", video, result.n_frames, result.fps, result.video_score,
             " (partial: decoding stopped early)" if result.partial else "")
    if output_format == "json":
        text = json.dumps(as_json(result, scorer)) + "\n"
    else:
        buffer = io.StringIO()
        write_csv(result, buffer)
        text = buffer.getvalue()
        if scorer.config.threshold is not None:
            for line in describe_intervals(result, scorer.config.threshold):
                click.echo(line, err=True)
    written = {"video": str(video)}
    if out_dir is None:
        click.echo(text, nl=False)
    else:
        path = out_dir / f"{video.stem}.{output_format}"
        try:
            atomic_write_bytes(path, text.encode())
        except OSError as exc:
            raise RunFailure(f"{path}: cannot write the scores ({exc.strerror or exc})") from None
        written["scores"] = str(path)
    if target is not None:
        written["plot"] = str(plot_scores(result, scorer, plot_path(target, video), gt_for_video(gt, video)))
    if report is not None:
        from vad.pipeline.report import write_report

        truth = None if report.gt is None else gt_for_video(report.gt, video)
        page = write_report(result, scorer, html_path(report.target, video), gt=truth, embed=report.embed, progress=not progress_disabled())
        written["html"] = str(page)
    if archive is not None:  # one small record per video (pipeline/archive.py)
        from vad.pipeline.archive import id_of

        archive.add(result, written.get("html"), id_of(video))
    return written
