"""The files `vad score` writes, planned and checked before any video is scored.

Every output of a run (OUT/<id>.csv or .json, the plots, the report pages with their proxy,
CSV and JSON, the index) is listed first, and the run is refused (ConfigError, exit 2, one line
naming both files) when an output would

- overwrite an input of the same run (`vad score ow/*.mp4 --html ow`, where `ow/` holds the
  user's own `a.proxy.mp4` beside `a.mp4`),
- overwrite a file that vad did not write (a user's `a.csv` where OUT/a.csv goes), or
- fail to be written at all: a name longer than the file system allows, a file where a folder
  must be, a folder this user cannot write.

vad recognises its own earlier outputs by what it writes into them, so a rerun on the same
folder overwrites them and never a user's file:

- a report page or index: its `<meta name="generator" content="vad score --html">`;
- a report proxy: the MP4 comment PROXY_MARK (or, as older versions wrote no mark, its page
  beside it, a vad page whose video is this proxy);
- a scores CSV: its header `frame,time_s,score` (`vad score`) or `frame,score` (`vad eval`);
- a score JSON: it begins `{"video": ` as `vad score --format json` writes it;
- a plot: the PNG text chunk Software = PLOT_MARK.

An earlier run's proxy that the same run writes again is no video to score: a glob over a report
folder (`vad score ow/*.mp4 --out ow --html ow` twice) skips it with a warning.
"""
from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from vad.errors import ConfigError
from vad.extract.inputs import VideoItem
from vad.files import output_problem

log = logging.getLogger("vad")

PAGE_GENERATOR = '<meta name="generator" content="vad score --html">'  # in report.html and report_index.html
PROXY_MARK = "vad score --html: report proxy"  # the proxy MP4's comment tag
PLOT_MARK = "vad"  # the PNG Software text of vad's plots (pipeline/plot.py)
SCORE_CSV_HEADERS = ("frame,time_s,score", "frame,score")
SCORE_JSON_START = '{"video": '


@dataclass(frozen=True)
class Output:
    """One file a run writes: where, what it is (for messages), its kind (how vad recognises its own
    earlier copy: csv, json, page, proxy, plot, index), the video it belongs to and the option that
    asked for it."""

    path: Path
    what: str
    kind: str
    video: Path | None
    option: str


def _page_files(page: Path) -> dict[str, Path]:
    # as pipeline/report.py page_files: <stem>.proxy.mp4, <stem>.csv, <stem>.json beside the page
    return {"proxy": page.with_name(f"{page.stem}.proxy.mp4"), "csv": page.with_name(f"{page.stem}.csv"),
            "json": page.with_name(f"{page.stem}.json")}


def plan(items: Sequence[VideoItem], *, out: Path | None, output_format: str, plot: Path | None, pages: Path | None,
         embed: bool) -> list[Output]:
    """Every file `vad score` would write for `items` (named by their ids; plot and pages: the
    targets that plot_target and html_target return)."""
    from vad.pipeline.cmd_score import html_path, plot_path

    outputs = []
    for item in items:
        video = item.path
        if out is not None:
            outputs.append(Output(out / f"{item.video_id}.{output_format}", f"scores ({output_format.upper()})", output_format, video, "--out"))
        if plot is not None:
            outputs.append(Output(plot_path(plot, item.video_id), "plot", "plot", video, "--plot"))
        if pages is not None:
            page = html_path(pages, item.video_id)
            outputs.append(Output(page, "report page", "page", video, "--html"))
            if not embed:
                files = _page_files(page)
                outputs += [Output(files["proxy"], "report proxy", "proxy", video, "--html"),
                            Output(files["csv"], "report CSV", "csv", video, "--html"),
                            Output(files["json"], "report JSON", "json", video, "--html")]
    index = archive_page(out, pages)
    if index is not None:
        outputs.append(Output(index, "archive page", "index", None, "--html" if index.parent == pages else "--out"))
    return outputs


def archive_page(out: Path | None, pages: Path | None) -> Path | None:
    """Where the archive page goes: the --html folder's index.html, else OUT/index.html (None: stdout mode)."""
    from vad.pipeline.cmd_score import is_page

    if pages is not None and not is_page(pages):
        return pages / "index.html"
    return None if out is None else out / "index.html"


def _head(path: Path, size: int = 4096) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def _is_vad_page(path: Path) -> bool:
    return PAGE_GENERATOR.encode() in _head(path, 2048)


def is_vad_proxy(path: Path) -> bool:
    """A proxy vad wrote: its MP4 comment, or (proxies of older versions) a vad page beside it showing it."""
    import av

    try:
        with av.open(str(path)) as container:
            if container.metadata.get("comment") == PROXY_MARK:
                return True
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        pass
    if not path.name.endswith(".proxy.mp4"):
        return False
    page = path.with_name(path.name.removesuffix(".proxy.mp4") + ".html")
    if not _is_vad_page(page):
        return False
    try:
        text = page.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return f'id="video" src="{html.escape(quote(path.name, safe=""), quote=True)}"' in text


def _is_vad_plot(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get("Software") == PLOT_MARK
    except (OSError, ValueError, SyntaxError):
        return False


def is_vad_output(path: Path, kind: str) -> bool:
    """Whether the file at `path` is one that vad wrote as an output of this kind."""
    if kind in ("page", "index"):
        return _is_vad_page(path)
    if kind == "proxy":
        return is_vad_proxy(path)
    if kind == "csv":
        return _head(path, 64).split(b"\n", 1)[0].rstrip(b"\r").decode(errors="replace") in SCORE_CSV_HEADERS
    if kind == "json":
        return _head(path, 64).startswith(SCORE_JSON_START.encode())
    if kind == "plot":
        return _is_vad_plot(path)
    raise ValueError(f"unknown output kind {kind!r}")


def check_overwrite(output: Output) -> None:
    """ConfigError when `output` would replace a file vad did not write, or a folder."""
    path = output.path
    if not (path.exists() or path.is_symlink()) or path.is_dir():
        return
    if not is_vad_output(path, output.kind):
        owner = f"the {output.what} of {output.video}" if output.video is not None else f"the {output.what}"
        raise ConfigError(f"{path}: {owner} would overwrite this file, which vad did not write; move it away or choose another {output.option}")


def settle(items: Sequence[VideoItem], **targets) -> list[VideoItem]:
    """The videos to score, once no output of the run would overwrite an input, a user's file, or
    fail to be written; `targets` as plan's. Raises ConfigError (exit 2) before any work."""
    items = list(items)
    while True:
        inputs = {item.path.resolve(): item.path for item in items}
        outputs = plan(items, **targets)
        skipped = None
        for output in outputs:
            hit = inputs.get(output.path.resolve())
            if hit is None:
                continue
            if output.video is not None and output.video.resolve() == output.path.resolve():
                raise ConfigError(f"{output.path}: the {output.what} would overwrite the video it reports on; choose another {output.option}")
            if output.kind == "proxy" and is_vad_proxy(output.path):
                skipped = hit
                log.warning("%s: not scored: it is the report proxy of %s that this run writes again", hit, output.video)
                break
            raise ConfigError(f"{hit} is an input of this run and the {output.what} of {output.video} would overwrite it; "
                              f"rename it, move it out of the folder or choose another {output.option}")
        if skipped is None:
            break
        items = [item for item in items if item.path is not skipped]
    for output in outputs:
        check_overwrite(output)
    seen = set()
    for output in outputs:
        if output.path in seen:
            continue
        seen.add(output.path)
        problem = output_problem(output.path)
        if problem is not None:
            owner = f"the {output.what} of {output.video}" if output.video is not None else f"the {output.what}"
            raise ConfigError(f"{output.option} {output.path}: cannot write {owner}: {problem}; choose another {output.option}")
    return items
