"""`vad score`: raw videos -> frame-level anomaly curves (CSV or JSON), optional plots and intervals."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from vad import settings
from vad.errors import RunFailure, VadError
from vad.extract.inputs import VideoItem
from vad.pipeline.common import progress_disabled, ray_options, ray_settings, verbosity
from vad.pipeline.report import EMBED_LIMIT_MB
from vad.pipeline.score import ScoreConfig

log = logging.getLogger("vad")


def plot_target(plot: str | None, videos: list) -> Path | None:
    """--plot X.png names the file (one video); any other path is a folder of <id>.png."""
    if plot is None:
        return None
    target = Path(plot)
    if target.suffix.lower() == ".png" and len(videos) > 1:
        raise VadError(f"--plot {plot}: one PNG file for {len(videos)} videos; pass a folder to get one <stem>.png per video")
    return target


def plot_path(target: Path, video_id: str) -> Path:
    return target if target.suffix.lower() == ".png" else target / f"{video_id}.png"


def html_target(html: str | None, videos: list[VideoItem], embed: bool) -> Path | None:
    """--html X.html names the page (one video); any other path is a folder of <id>.html plus index.html."""
    if html is None:
        if embed:
            raise VadError("--html-embed puts the video inside the page: pass --html PATH too")
        return None
    target = Path(html)
    if is_page(target):
        if len(videos) > 1:
            raise VadError(f"--html {html}: one page for {len(videos)} videos; pass a folder to get <stem>.html per video and index.html")
    else:
        named_index = [str(v.path) for v in videos if v.video_id.lower() == "index"]
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


def html_path(target: Path, video_id: str) -> Path:
    return target if is_page(target) else target / f"{video_id}.html"


def check_videos(videos: list[VideoItem], out: Path | None) -> None:
    """Ids are unique (discover refuses two videos with one id), so outputs named by id cannot collide."""
    if len(videos) > 1 and out is None:
        raise VadError(f"{len(videos)} videos: pass --out DIR to get one file per video (stdout holds one curve)")


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
              help="Write OUT/<id>.csv (or .json) per video instead of stdout; needed for several videos. A video that fails is reported and the "
                   "others go on (exit 1 at the end). A rerun skips the videos whose outputs were made from the same source by the same "
                   "model and settings (OUT/.vad-score/<id>.json), and runs sharing OUT split the videos between them.")
@click.option("--overwrite", is_flag=True, help="With --out: score every video again, even those whose outputs are up to date.")
@click.option("--shard", default=None, metavar="I/N",
              help="Score only the videos whose stable id hash falls in shard I of N (job arrays), as `vad extract --shard`.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="CACHE",
              help="Score videos already in this feature cache, without decoding: the arguments are ids (none: every entry), outputs "
                   "OUT/<id>.csv|.json. The cache's backbone, weights, crops, profile and geometry must be the model's.")
@ray_options("this process", "the videos, the model and the weights (with --plot or --html the driver decodes the video again)")
@verbosity
def score(videos, *, output_format, plot, gt_path, html, html_embed, out_dir, cache_dir, overwrite, shard, backend, ray_address, ray_actors,
          ray_cpus, **options):
    """Score raw videos with a trained detector: one anomaly score per frame.

    VIDEO is a video file (its id is its name without the extension), a folder (searched
    recursively; ids keep the relative path, e.g. cam1/0800) or @list.txt with one path per
    line. Outputs are named by id: OUT/cam1/0800.csv.

    The backbone, crops and preprocessing come from the model file; a video is decoded,
    cut into 16-frame snippets, run through that backbone and the detector, and each frame
    gets its snippet's score (time_s = frame / fps). Score correction is on by default.

    \b
    vad score clip.mp4 > scores.csv
    vad score clip.mp4 --format json --threshold 0.5 --plot clip.png
    vad score a.mp4 b.mp4 --out scores/ --plot scores/
    vad score clip.mp4 --threshold 0.5 --html clip.html    # open clip.html in a browser
    vad score a.mp4 b.mp4 --out scores/ --html report/    # report/index.html lists the pages
    vad score archive/ --out scores/ --shard 0/4           # rerun to resume; one run per shard
    vad score --cache cache/ --out scores/                  # every video in a feature cache
    vad score archive/ --out scores/ --backend ray --ray-address auto   # on a Ray cluster

    Exit codes: 0 all scored, 1 some video failed, 2 bad command line or a model that does
    not fit its backbone weights.
    """
    from vad.pipeline.api import load_scorer
    from vad.pipeline.outputs import archive_page, settle
    from vad.pipeline.score import generated_footage_warning
    from vad.tables import read_gt

    ray = ray_settings(backend, ray_address, ray_actors, ray_cpus)
    if ray is not None and (out_dir is None or cache_dir is not None):
        raise VadError("--backend ray scores raw videos into a folder: pass --out DIR (and no --cache)")
    if cache_dir is not None:  # ids in a feature cache (pipeline/score_cache.py)
        from vad.pipeline.score_cache import score_cache

        return score_cache(cache_dir, [str(v) for v in videos], output_format=output_format, out_dir=out_dir,
                           scoring=settings.given(ScoreConfig, options),
                           refused={"--plot": plot, "--gt": gt_path, "--html": html, "--html-embed": html_embed})
    if not videos:
        raise click.UsageError("Missing argument 'VIDEO...' (or --cache CACHE).")
    from vad.extract.inputs import discover, in_shard, parse_shard

    videos = discover([str(v) for v in videos])  # files, folders, @lists: ids as `vad extract` gives them
    others = []  # other shards' videos: their finished ones join this run's archive summary
    if shard is not None:
        part = parse_shard(shard)
        videos, others = [item for item in videos if in_shard(item.video_id, part)], [item for item in videos if not in_shard(item.video_id, part)]
    target = plot_target(plot, videos)
    pages = html_target(html, videos, html_embed)
    check_videos(videos, out_dir)
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

    index_page = archive_page(out_dir, pages)
    archive = Archive(report_threshold(scorer), out=out_dir, index=index_page) if out_dir is not None or index_page is not None else None
    outputs = dict(out=out_dir, output_format=output_format, plot=target, pages=pages, embed=html_embed)
    state = None if out_dir is None else _state(scorer, outputs, gt_path).start()  # records and claims (pipeline/score_state.py)
    skipped, claimed, todo = [], [], []

    def fail(video: VideoItem, message: str) -> None:
        log.error("vad: %s", message if str(video.path) in message else f"{video.path}: {message}")
        failed.append({"video": str(video.path), "error": message})
        if archive is not None:
            archive.add_failure(video, message)

    def finish(video: VideoItem, source: dict | None = None, curve=None) -> None:
        """Score the video here (curve None) or take the curve a Ray actor returned; write its outputs and record
        (the one writer of both backends); a failure is one line and the others go on. Releases the claim."""
        try:
            source, kept = source or _source(video), []
            written = _score_one(scorer, video, output_format, out_dir=out_dir, target=target, gt=gt, report=report, archive=archive,
                                 kept=kept, curve=curve)
            if state is not None:
                state.write(video, source, files_of[video.video_id], _curve_record(kept[0]))
        except Exception as exc:  # one broken video must not stop the others
            fail(video, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            return
        finally:
            if state is not None:
                state.release(video.video_id)
        scored.append(written)

    files_of = {}
    for video in videos:
        files = files_of[video.video_id] = _files_of(video, outputs)
        why = None if state is None else _why_not(state, video, files, overwrite)
        if why is not None:
            (claimed if why == "claimed" else skipped).append(str(video.path))
            if why == "done" and archive is not None:
                _add_recorded(state, video, archive, files)
            continue
        if ray is None:
            finish(video)
        else:
            todo.append(video)
    if todo:  # --backend ray: claimed above, scored by the actors, written here as they come back
        from vad.pipeline.score_ray import score_ray

        sources = {}
        for video in list(todo):
            try:
                sources[video.video_id] = _source(video)  # size and mtime before scoring, as the local path reads them
            except OSError as exc:
                todo.remove(video)
                fail(video, f"cannot read it ({exc.strerror or exc})")
                state.release(video.video_id)

        def failure(video: VideoItem, message: str) -> None:
            fail(video, message)
            state.release(video.video_id)

        score_ray(todo, scorer, ray, on_curve=lambda video, curve: finish(video, sources[video.video_id], curve), on_failure=failure,
                  progress=not progress_disabled())
    if state is not None:
        state.stop()
        for video in others if archive is not None else []:
            files = _files_of(video, outputs)
            if state.is_done(video, files):
                _add_recorded(state, video, archive, files)
    archived = {} if archive is None else archive.finish()  # summary.csv, events.csv, the archive page index.html
    index = archived.get("index")
    if index is not None:
        log.info("report: %s", index)
    if out_dir is not None:
        click.echo(json.dumps({"out": str(out_dir), "scored": len(scored), "skipped": len(skipped), "failed": len(failed),
                               "claimed": len(claimed), "files": scored,
                               "failures": failed, **{key: str(path) for key, path in archived.items()},
                               "seconds": round(time.perf_counter() - started, 2)}))
    if failed:
        raise RunFailure(f"{len(failed)} of {len(videos)} video(s) could not be scored: {', '.join(f['video'] for f in failed)}")
    if archive is not None:
        archive.raise_problems()  # OUT/summary.csv, OUT/events.csv or the archive page could not be written


def _state(scorer, outputs: dict, gt_path: Path | None):
    """The records and claims of OUT: done means made by this model file (sha256) with these settings and outputs."""
    from vad.pipeline.score_state import ScoreState, recorded_settings
    from vad.weights import sha256_file

    extra = {"format": outputs["output_format"], "plot": outputs["plot"], "html": outputs["pages"], "html_embed": outputs["embed"],
             "gt_sha256": sha256_file(gt_path) if gt_path is not None else None}
    return ScoreState(outputs["out"], sha256_file(Path(scorer.config.model)), recorded_settings(scorer.config, **extra))


def _files_of(video: VideoItem, outputs: dict) -> list[Path]:
    from vad.pipeline.outputs import plan

    return [output.path for output in plan([video], **outputs) if output.video is not None]


def _why_not(state, video: VideoItem, files: list[Path], overwrite: bool) -> str | None:
    """None when this run scores `video` (claimed, its old record forgotten); "done" or "claimed" when it leaves it."""
    if not overwrite and state.is_done(video, files):
        return "done"
    holder = state.claim(video.video_id)
    if holder is not None:
        log.info("%s: claimed by pid %s on %s; left to it", video.path, holder.get("pid"), holder.get("host"))
        return "claimed"
    if not overwrite and state.is_done(video, files):  # another run finished it meanwhile
        state.release(video.video_id)
        return "done"
    state.forget(video.video_id)
    return None


def _source(video: VideoItem) -> dict:
    from vad.pipeline.score_state import source_identity

    return source_identity(video.path)


def _curve_record(curve) -> dict:
    """What a rerun that skips the video needs for the archive summary: the snippet scores (1/16 of the frames) and the rest."""
    return {"curve": {"fps": curve.fps, "n_frames": curve.n_frames, "partial": curve.partial, "video_score": float(curve.video_score),
                      "snippet_scores": [float(s) for s in curve.snippet_scores]}}


def _add_recorded(state, video: VideoItem, archive, files: list[Path]) -> None:
    """A skipped video's row in the archive summary, from its record."""
    import numpy as np

    from vad.models.evaluate import frame_scores
    from vad.pipeline.score import Curve

    saved = (state.record(video.video_id) or {}).get("curve") or {}
    try:
        snippet = np.asarray(saved["snippet_scores"], dtype=np.float64)
        curve = Curve(path=video.path, fps=saved["fps"], n_frames=saved["n_frames"], partial=saved["partial"], snippet_scores=snippet,
                      frame_scores=frame_scores(snippet, saved["n_frames"]), video_score=saved["video_score"], provenance={})
    except (KeyError, TypeError, ValueError):
        return
    page = next((str(path) for path in files if path.suffix.lower() in (".html", ".htm")), None)
    archive.add(curve, page, video.video_id)


def _score_one(scorer, video: VideoItem, output_format: str, *, out_dir: Path | None, target: Path | None, gt: dict,
               report: Pages | None, archive=None, kept: list | None = None, curve=None) -> dict:
    """Score (unless `curve` is given: a Ray actor scored it), write the curve (stdout or OUT/<id>.<format>), the plot and
    the report page; returns what was written (and appends the curve to `kept`)."""
    from vad.files import atomic_write_bytes
    from vad.pipeline.score import curve_text, gt_for_video, plot_scores

    video_id, video = video.video_id, video.path
    result = curve if curve is not None else scorer.score(video, progress=not progress_disabled())
    if kept is not None:
        kept.append(result)
    log.info("%s: %d frames at %.3f fps, video score %.3f%s", video, result.n_frames, result.fps, result.video_score,
             " (partial: decoding stopped early)" if result.partial else "")
    text, notes = curve_text(result, scorer, output_format)
    for line in notes:
        click.echo(line, err=True)
    written = {"video": str(video)}
    if out_dir is None:
        click.echo(text, nl=False)
    else:
        path = out_dir / f"{video_id}.{output_format}"
        try:
            atomic_write_bytes(path, text.encode())
        except OSError as exc:
            raise RunFailure(f"{path}: cannot write the scores ({exc.strerror or exc})") from None
        written["scores"] = str(path)
    if target is not None:
        written["plot"] = str(plot_scores(result, scorer, plot_path(target, video_id), gt_for_video(gt, video)))
    if report is not None:
        from vad.pipeline.report import write_report

        truth = None if report.gt is None else gt_for_video(report.gt, video)
        page = write_report(result, scorer, html_path(report.target, video_id), gt=truth, embed=report.embed, progress=not progress_disabled())
        written["html"] = str(page)
    if archive is not None:  # one small record per video (pipeline/archive.py)
        archive.add(result, written.get("html"), video_id)
    return written
