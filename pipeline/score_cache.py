"""`vad score --cache CACHE [ID...]`: the curves of videos already in a feature cache, without decoding.

The features of each entry go through Scorer.curve, the step `vad score VIDEO` takes after the
backbone, so a cache extracted with the model's settings gives the raw videos' curves. The frame
count, fps and partial flag come from the entry's metadata; an entry without a frame rate (imported
features) fails with one line, as a video whose container gives none does. Outputs are the same
files as for videos, named by id: stdout for one id, or OUT/<id>.csv|.json (the id's folders kept).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import click

from vad.errors import ConfigError, RunFailure, VadError
from vad.extract.cache import CacheError, FeatureCache, check_video_id

log = logging.getLogger("vad")


@dataclass(frozen=True)
class CachedVideo:
    """A cache entry where the archive summary expects a video: its id, and where it is."""

    video_id: str
    path: Path


def cache_ids(cache: FeatureCache, ids: list[str]) -> list[str]:
    """The ids to score: those given (each checked to be a finished entry), or every finished entry."""
    if not ids:
        found = cache.video_ids()
        if not found:
            raise CacheError(f"{cache.root}: no finished entries to score")
        return found
    missing = [video_id for video_id in ids if not cache.is_done(check_video_id(video_id))]
    if missing:
        raise CacheError(f"{cache.root}: no finished entry {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                         + "; `vad cache` lists what a cache holds")
    return list(dict.fromkeys(ids))


def score_cache(cache_dir: Path, ids: list[str], *, output_format: str, out_dir: Path | None, scoring: dict, refused: dict) -> None:
    """The `vad score --cache` run: `scoring` holds ScoreConfig's settings as given; `refused` the options that need
    the video itself (name -> value), each refused when set."""
    from vad.files import atomic_write_bytes
    from vad.pipeline.archive import Archive, check_outputs
    from vad.pipeline.outputs import Output, check_overwrite
    from vad.pipeline.report import report_threshold
    from vad.pipeline.score import ScoreConfig, Scorer, curve_text, generated_footage_warning
    from vad.settings import build

    given = [name for name, value in refused.items() if value not in (None, False)]
    if given:
        raise ConfigError(f"{given[0]} needs the video itself; with --cache only the scores are written (--format, --out, --threshold)")
    cache = FeatureCache(cache_dir)
    _ = cache.config  # CacheError for a folder that is not a cache, before the model loads
    ids = cache_ids(cache, ids)
    if len(ids) > 1 and out_dir is None:
        raise VadError(f"{len(ids)} cached videos: pass --out DIR to get one file per video (stdout holds one curve)")
    if out_dir is not None:
        from vad.files import output_problem

        for video_id in ids:
            path = out_dir / f"{video_id}.{output_format}"
            check_overwrite(Output(path, f"scores ({output_format.upper()})", output_format, Path(video_id), "--out"))
            problem = output_problem(path)
            if problem is not None:
                raise ConfigError(f"--out {path}: cannot write the scores of {video_id}: {problem}; choose another --out")
    entries = [CachedVideo(video_id, cache.root / video_id) for video_id in ids]  # the archive summary names them by id
    if out_dir is not None:
        check_outputs(entries, out_dir, output_format, None)  # OUT/summary.csv and OUT/events.csv
        check_overwrite(Output(out_dir / "index.html", "archive page", "index", None, "--out"))
    scorer = Scorer.from_config(build(ScoreConfig, scoring, "vad score"), backbone=False)
    scorer.check_cache(cache)
    archive = Archive(report_threshold(scorer), out=out_dir, index=out_dir / "index.html") if out_dir is not None else None
    if scorer.trained_on_generated_footage():
        click.echo(generated_footage_warning(scorer), err=True)

    started = time.perf_counter()
    scored, failed = [], []
    for video_id in ids:
        try:
            result = scorer.score_cached(cache, video_id)
            log.info("%s: %d frames at %.3f fps, video score %.3f (from the cache)", video_id, result.n_frames, result.fps, result.video_score)
            text, notes = curve_text(result, scorer, output_format)
            for line in notes:
                click.echo(line, err=True)
            if out_dir is None:
                click.echo(text, nl=False)
                scored.append({"video_id": video_id})
                continue
            path = out_dir / f"{video_id}.{output_format}"
            try:
                atomic_write_bytes(path, text.encode())
            except OSError as exc:
                raise RunFailure(f"{path}: cannot write the scores ({exc.strerror or exc})") from None
            scored.append({"video_id": video_id, "scores": str(path)})
            archive.add(result, video_id=video_id)
        except Exception as exc:  # one broken entry must not stop the others
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.error("vad: %s", message if video_id in message else f"{video_id}: {message}")
            failed.append({"video_id": video_id, "error": message})
            if archive is not None:
                archive.add_failure(CachedVideo(video_id, cache.root / video_id), message)
    archived = {} if archive is None else archive.finish()  # summary.csv and events.csv, sorted by video score
    if out_dir is not None:
        click.echo(json.dumps({"out": str(out_dir), "cache": str(cache_dir), "scored": len(scored), "failed": len(failed), "files": scored,
                               "failures": failed, **{key: str(path) for key, path in archived.items()},
                               "seconds": round(time.perf_counter() - started, 2)}))
    if failed:
        raise RunFailure(f"{len(failed)} of {len(ids)} cached video(s) could not be scored: {', '.join(f['video_id'] for f in failed)}")
    if archive is not None:
        archive.raise_problems()
