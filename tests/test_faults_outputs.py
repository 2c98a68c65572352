"""Faults of the outputs of `vad score` and `vad eval --scores-out`, one test per case.

Each docstring gives the input, the exit code and the message expected, and the files that must
be left behind. The refusals happen before any work: the runs are cheap (no video is scored), and
the few that score use the untrained r50 model of tests/test_score.py on 16-frame clips. Pages
of long videos are rendered with a stub scorer (no backbone) and a proxy of a short clip.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_score import make_model

from vad.errors import RunFailure, VadError
from vad.files import atomic_write_bytes
from vad.pipeline.cli import main
from vad.weights import sha256_file

from videos import pattern_frames, write_lossless

FPS = 25


def run(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def listing(folder: Path) -> dict[str, str]:
    """Every file under `folder` (temporary ones included) with its md5."""
    return {str(p.relative_to(folder)): md5(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def model(tmp_path_factory, r50_weights_path) -> list:
    path = make_model(tmp_path_factory.mktemp("model") / "r50.pt", "i3d-r50", sha256_file(r50_weights_path))
    return ["--model", path, "--weights", r50_weights_path, "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """16 lossless frames at 25 fps: one snippet."""
    return write_lossless(tmp_path_factory.mktemp("clips") / "clip.mp4", pattern_frames(16, seed=1), fps=FPS)


@pytest.fixture
def ow(tmp_path, clip) -> Path:
    """A folder holding a.mp4."""
    folder = tmp_path / "ow"
    folder.mkdir()
    shutil.copy(clip, folder / "a.mp4")
    return folder


def stub_scorer(threshold: float = 0.5):
    """A Scorer without backbone or detector: enough to render and write pages of chosen curves."""
    from vad.pipeline.score import ScoreConfig, Scorer

    engine = SimpleNamespace(spec=SimpleNamespace(name="i3d-r50"), plan=SimpleNamespace(crops=1), precision="fp32", device=torch.device("cpu"))
    return Scorer(ScoreConfig(model=Path("model.pt"), threshold=threshold), None, {"profile": "direct"}, engine, {})


def curve_of(video: Path, scores) -> object:
    from vad.pipeline.score import Curve

    scores = np.asarray(scores, dtype=np.float64)
    return Curve(video, float(FPS), len(scores), False, scores[::16].copy(), scores, float(scores.max()), {})


# -- 1. an output never overwrites an input or a user's file -------------------------------------
def test_a_users_proxy_among_the_inputs_is_not_overwritten(ow, clip, model):
    """`vad score ow/a.mp4 ow/a.proxy.mp4 --out ow --html ow` (ow/*.mp4), a.proxy.mp4 the user's own video:
    exit 2, "ow/a.proxy.mp4 is an input of this run and the report proxy of ow/a.mp4 would overwrite it",
    before any work: nothing on stdout, the folder as it was (no a.proxy.proxy.mp4)."""
    shutil.copy(clip, ow / "a.proxy.mp4")
    before = listing(ow)
    result = run("score", *sorted(ow.glob("*.mp4")), "--out", ow, "--html", ow, *model)
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"vad: error: {ow / 'a.proxy.mp4'} is an input of this run and the report proxy of {ow / 'a.mp4'} would "
                             f"overwrite it; rename it, move it out of the folder or choose another --html\n")
    assert result.stdout == "" and listing(ow) == before


@pytest.mark.parametrize("name, what, option", [("a.csv", "scores (CSV) of {a}", "--out"), ("a.proxy.mp4", "report proxy of {a}", "--html"),
                                                ("a.html", "report page of {a}", "--html"), ("index.html", "archive page", "--html"),
                                                ("a.png", "plot of {a}", "--plot")])
def test_a_users_file_where_an_output_goes_is_refused(ow, clip, model, name, what, option):
    """`vad score ow/a.mp4 --out ow --html ow --plot ow` where ow/NAME is the user's own file (a CSV, a video,
    a page, a picture that vad did not write): exit 2, "ow/NAME: the ... of ow/a.mp4 would overwrite this file,
    which vad did not write; move it away or choose another OPTION"; nothing written, the file as it was."""
    content = {".csv": b"frame,label\n0,1\n", ".html": b"<!doctype html><p>my notes</p>\n", ".png": b"\x89PNG\r\n\x1a\n not vad's"}
    user = ow / name
    if name.endswith(".mp4"):
        shutil.copy(clip, user)
    else:
        user.write_bytes(content[user.suffix])
    before = listing(ow)
    result = run("score", ow / "a.mp4", "--out", ow, "--html", ow, "--plot", ow, *model)
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"vad: error: {user}: the {what.format(a=ow / 'a.mp4')} would overwrite this file, which vad did not write; "
                             f"move it away or choose another {option}\n")
    assert result.stdout == "" and listing(ow) == before


def test_a_rerun_on_a_report_folder_rewrites_vads_own_outputs(ow, model):
    """`vad score ow/a.mp4 --out ow --html ow --plot ow`, then the same with ow/*.mp4 (now a.mp4 and the
    first run's a.proxy.mp4) and --overwrite (a plain rerun skips a.mp4, done): exit 0 both times; the
    second skips "ow/a.proxy.mp4: not scored: it is the report proxy of ow/a.mp4 that this run writes
    again", scores a.mp4 alone and rewrites every output; the same files are left (no a.proxy.html, no
    a.proxy.proxy.mp4)."""
    args = ["--out", ow, "--html", ow, "--threshold", 0.5, *model]
    first = run("score", ow / "a.mp4", *args)
    assert first.exit_code == 0, first.output
    files = sorted(name for name in listing(ow) if not name.startswith("."))
    assert files == ["a.csv", "a.html", "a.json", "a.mp4", "a.proxy.mp4", "events.csv", "index.html", "summary.csv"]
    stamps = {name: (ow / name).stat().st_mtime_ns for name in files}
    second = run("score", *sorted(ow.glob("*.mp4")), *args, "--overwrite")
    assert second.exit_code == 0, second.output
    assert f"{ow / 'a.proxy.mp4'}: not scored: it is the report proxy of {ow / 'a.mp4'} that this run writes again" in second.stderr
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert (summary["scored"], summary["failed"], [f["video"] for f in summary["files"]]) == (1, 0, [str(ow / "a.mp4")])
    assert sorted(name for name in listing(ow) if not name.startswith(".")) == files
    assert all((ow / name).stat().st_mtime_ns > stamps[name] for name in files if name != "a.mp4")


def test_vads_own_outputs_are_known_by_their_marks(tmp_path, clip):
    """A plot is vad's by its PNG Software text (a matplotlib PNG without it is not). A proxy without vad's
    MP4 comment (as vad wrote them before) counts as vad's only when the vad page beside it shows it; a
    user's video of the same name beside a user's page does not."""
    from matplotlib.figure import Figure

    from vad.pipeline.outputs import is_vad_output, is_vad_proxy
    from vad.pipeline.plot import plot_curve
    from vad.pipeline.report import write_report

    assert is_vad_output(plot_curve(tmp_path / "vad.png", [0.1, 0.7, 0.2], FPS), "plot")
    Figure().savefig(tmp_path / "mine.png")
    assert not is_vad_output(tmp_path / "mine.png", "plot")

    page = write_report(curve_of(clip, np.full(16, 0.3)), stub_scorer(), tmp_path / "a.html")
    assert is_vad_proxy(tmp_path / "a.proxy.mp4")
    shutil.copy(clip, tmp_path / "a.proxy.mp4")  # no mark: known by the page that shows it
    assert is_vad_proxy(tmp_path / "a.proxy.mp4")
    page.write_text("<!doctype html><video src='a.proxy.mp4'></video>")
    assert not is_vad_proxy(tmp_path / "a.proxy.mp4")


# -- 6. output paths checked before the work; write errors are one line, exit 1 ------------------
def test_an_output_folder_that_is_a_file_is_refused_before_scoring(tmp_path, clip, model):
    """`vad score clip.mp4 --html blocker/p.html`, blocker a file: exit 2, "--html blocker/p.html: cannot write
    the report page of clip.mp4: blocker is a file, not a folder", before scoring: no CSV on stdout."""
    (tmp_path / "blocker").write_text("mine\n")
    result = run("score", clip, "--html", tmp_path / "blocker" / "p.html", *model)
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"vad: error: --html {tmp_path / 'blocker' / 'p.html'}: cannot write the report page of {clip}: "
                             f"{tmp_path / 'blocker'} is a file, not a folder; choose another --html\n")
    assert result.stdout == "" and listing(tmp_path) == {"blocker": md5(tmp_path / "blocker")}


def without_dac() -> list[str] | None:
    """A command prefix under which chmod denies writing (root bypasses it), None when there is none."""
    if os.geteuid() != 0:
        return []
    command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if shutil.which("setpriv") and subprocess.run([*command, "true"], capture_output=True).returncode == 0:
        return command
    return None


def test_a_read_only_output_folder_is_refused_before_scoring(tmp_path, clip, model):
    """`vad score clip.mp4 --html ro/p.html`, ro not writable: exit 2, "--html ro/p.html: cannot write the report
    page of clip.mp4: the folder ro is not writable by this user", before scoring: nothing on stdout, ro empty."""
    prefix = without_dac()
    if prefix is None:
        pytest.skip("running as root and setpriv cannot drop CAP_DAC_OVERRIDE here: chmod denies nothing")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    try:
        done = subprocess.run([*prefix, str(Path(sys.executable).with_name("vad")), "score", str(clip), "--html", str(ro / "p.html"),
                               *map(str, model)], capture_output=True, text=True, timeout=120)
    finally:
        ro.chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (f"vad: error: --html {ro / 'p.html'}: cannot write the report page of {clip}: the folder {ro} is not writable "
                           f"by this user; choose another --html\n")
    assert done.stdout == "" and list(ro.iterdir()) == []


def test_an_output_name_longer_than_the_file_system_allows_is_refused_before_scoring(tmp_path, clip, model):
    """A 250-byte video name, `vad score V.mp4 --html out/`: V.proxy.mp4 would be 256 bytes: exit 2,
    "--html out/V.proxy.mp4: cannot write the report proxy of V.mp4: the name ... is 256 bytes, longer than
    the 255 the file system allows", before scoring; out/ is not even made."""
    video = shutil.copy(clip, tmp_path / ("v" * 246 + ".mp4"))
    result = run("score", video, "--html", tmp_path / "out", *model)
    assert result.exit_code == 2, result.output
    proxy = tmp_path / "out" / ("v" * 246 + ".proxy.mp4")
    assert result.stderr.startswith(f"vad: error: --html {proxy}: cannot write the report proxy of {video}: the name vvvv")
    assert result.stderr.endswith(" is 256 bytes, longer than the 255 the file system allows; choose another --html\n")
    assert result.stdout == "" and not (tmp_path / "out").exists()


def test_a_name_of_255_bytes_gets_a_temporary_name_the_file_system_accepts(tmp_path):
    """A final name of 255 bytes (and one of 241, which the temporary name used to push past 255) is
    written atomically; no temporary file is left."""
    for length in (241, 255):
        atomic_write_bytes(tmp_path / ("é" * 10 + "n" * (length - 20)), b"data")
    assert sorted(len(os.fsencode(p.name)) for p in tmp_path.iterdir()) == [241, 255]


def test_a_write_error_during_the_run_is_one_line_and_exit_1(tmp_path, clip, model):
    """`vad score clip.mp4 --out out` where the disk refuses the CSV mid-write (a 100-byte file size limit,
    EFBIG): exit 1, "vad: clip.mp4: out/clip.csv: cannot write the scores (File too large)" (it said
    "[Errno 27] File too large", no file named) and the count of failed videos; no CSV, no temporary file left."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100, hard))
    try:
        result = run("score", clip, "--out", tmp_path / "out", *model)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert result.exit_code == 1, result.output
    # the archive summary's record of the failure passes the limit too: summary.csv and events.csv are not written, said in one line
    assert result.stderr.splitlines() == [f"vad: {clip}: {tmp_path / 'out' / 'clip.csv'}: cannot write the scores (File too large)",
                                          "vad: the archive summary: cannot keep its records in a temporary file (File too large); "
                                          "it is not written",
                                          f"vad: error: 1 of 1 video(s) could not be scored: {clip}"]
    assert [p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")] == []


def eval_world(root: Path) -> list:
    """A feature cache of two 8-d videos (a, cam/b), labels, GT and an untrained model: `vad eval` arguments."""
    from vad.extract.cache import FeatureCache
    from vad.models.detector import build_detector
    from vad.models.io import save_model
    from vad.tables import write_gt, write_labels

    cache = FeatureCache(root / "cache")
    cache.ensure_config({"backbone": "synthetic", "feature_dim": 8, "crops": 1, "clip_len": 16})
    for video in ("a", "cam/b"):
        cache.write(video, np.random.default_rng(0).normal(size=(3, 1, 8)).astype(np.float32), {"n_frames": 40})
    write_labels(root / "labels.csv", {"a": 1, "cam/b": 0})
    write_gt(root / "gt.csv", {"a": [(0, 16)]})
    torch.manual_seed(0)
    save_model(root / "model.pt", build_detector(feature_dim=8, hidden_dim=16, fc_dim=4), feature={"backbone": "synthetic", "feature_dim": 8})
    return ["eval", "--model", root / "model.pt", "--cache", root / "cache", "--labels", root / "labels.csv", "--gt", root / "gt.csv",
            "--device", "cpu", "--json", "-q"]


@pytest.mark.parametrize("case", ["users_file", "folder_is_a_file"])
def test_scores_out_checks_every_id_before_the_work(tmp_path, case):
    """`vad eval ... --scores-out out` where out/cam/b.csv is the user's file, or out/cam is a file: exit 2,
    "out/cam/b.csv: the scores of cam/b would overwrite this file, which vad did not write; ..." or
    "--scores-out out: cannot write the scores of cam/b as out/cam/b.csv: out/cam is a file, not a folder",
    before scoring: out/a.csv (the first id) is not written. Without the user's file: exit 0, both written."""
    args = eval_world(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    if case == "users_file":
        (out / "cam").mkdir()
        (out / "cam" / "b.csv").write_text("frame,label\n")
        expected = (f"vad: error: {out / 'cam' / 'b.csv'}: the scores of cam/b would overwrite this file, which vad did not write; "
                    f"move it away or choose another --scores-out\n")
    else:
        (out / "cam").write_text("mine\n")
        expected = f"vad: error: --scores-out {out}: cannot write the scores of cam/b as {out / 'cam' / 'b.csv'}: {out / 'cam'} is a file, not a folder\n"
    before = listing(out)
    result = run(*args, "--scores-out", out)
    assert result.exit_code == 2, result.output
    assert result.stderr == expected and result.stdout == "" and listing(out) == before
    shutil.rmtree(out)
    result = run(*args, "--scores-out", out)
    assert result.exit_code == 0, result.output
    assert sorted(listing(out)) == ["a.csv", "cam/b.csv"] and "auc" in json.loads(result.stdout)
    assert run(*args, "--scores-out", out).exit_code == 0  # a rerun overwrites vad's own files


def test_frame_scores_refuse_an_id_outside_the_folder_before_writing_any(tmp_path):
    """write_frame_scores(out, {a, ../escape}): VadError "video id '../escape' would be written outside out",
    and out/a.csv, the id before it, is not written either."""
    from vad.models.evaluate import write_frame_scores

    with pytest.raises(VadError, match=r"video id '\.\./escape' would be written outside"):
        write_frame_scores(tmp_path / "out", {"a": np.array([0.5]), "../escape": np.array([0.5])}, {"a": 16, "../escape": 16})
    assert list(tmp_path.iterdir()) == []


# -- 8. long videos: small pages, a capped and streamed --html-embed ------------------------------
def page_data(text: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="vad-data">(.*?)</script>', text, re.S).group(1))


def test_the_page_of_a_long_video_holds_rounded_maxima(tmp_path, clip):
    """A 100,000-frame curve (0.123456789 everywhere, a 1-frame spike of 0.987654321 at frame 54,321): the page
    holds 10,000 points, the maximum of each 10 frames rounded up to 4 decimals (the spike survives, at
    point 5,432), says so, links the CSV, and is under 150 kB (it held 1.9 MB of full-precision scores)."""
    from vad.pipeline.report import Proxy, href, render_page

    scores = np.full(100_000, 0.123456789)
    scores[54_321] = 0.987654321
    text = render_page(curve_of(clip, scores), stub_scorer(), video_src=href("clip.proxy.mp4"), csv=(href("clip.csv"), "clip.csv"),
                       json_link=(href("clip.json"), "clip.json"), gt=None, proxy=Proxy(96, 64, 100_000, FPS, 0))
    data = page_data(text)
    assert (data["n_frames"], data["frames_per_point"], len(data["scores"])) == (100_000, 10, 10_000)
    assert max(data["scores"]) == data["scores"][5432] == 0.9877 and set(data["scores"]) == {0.1235, 0.9877}
    assert "the highest score of each 10 frames" in text and 'href="clip.csv"' in text
    assert len(text.encode()) < 150_000


def test_the_page_keeps_the_clis_events_at_every_4_decimal_threshold(tmp_path, clip):
    """Scores just above and at thresholds (0.50004, 0.5, 0.00003, 0.51): rounded up, the page's scores are
    above a threshold of at most 4 decimals exactly when the CLI's are."""
    from vad.pipeline.plot import intervals_above
    from vad.pipeline.report import page_points

    scores = np.array([0.50004, 0.5, 0.00003, 0.51, 0.0, 0.99999, 0.123456, 0.7] * 2)
    k, points = page_points(scores)
    assert k == 1 and all(len(repr(p).split(".")[1]) <= 4 for p in points)
    for threshold in (0, 0.0001, 0.1234, 0.1235, 0.5, 0.5001, 0.51, 0.9999, 1):
        assert intervals_above(points, threshold) == intervals_above(scores, threshold), threshold


def test_html_embed_refuses_a_proxy_over_the_limit(tmp_path, clip, monkeypatch):
    """`--html-embed` (vad score --help states the 50 MB limit) with a proxy over the limit (lowered here to
    1 kB): ReportError, exit 1, "p.html: the proxy of clip.mp4 passes 0.001 MB, too large for --html-embed;
    without --html-embed the page links it as p.proxy.mp4 beside it"; nothing left in the folder."""
    from vad.pipeline import report

    assert "proxy over 50 MB is refused" in " ".join(run("score", "--help").stdout.split())
    monkeypatch.setattr(report, "EMBED_LIMIT_MB", 0.001)
    folder = tmp_path / "page"
    with pytest.raises(RunFailure) as raised:
        report.write_report(curve_of(clip, np.full(16, 0.3)), stub_scorer(), folder / "p.html", embed=True)
    assert raised.value.exit_code == 1
    assert str(raised.value) == (f"{folder / 'p.html'}: the proxy of {clip} passes 0.001 MB, too large for --html-embed; "
                                 f"without --html-embed the page links it as p.proxy.mp4 beside it")
    assert list(folder.iterdir()) == []


def test_an_embedded_page_streams_the_proxy_instead_of_holding_copies(tmp_path):
    """`write_report(..., embed=True)` of a 24-frame noise clip (a proxy of about 600 kB): Python's memory peaks
    below the proxy's size (it held five or six copies), and the page's data URI is the whole proxy."""
    from vad.pipeline.report import write_report

    frames = np.random.default_rng(0).integers(0, 256, (24, 240, 320, 3), dtype=np.uint8)
    video = write_lossless(tmp_path / "noise.mp4", frames, fps=FPS)
    curve, scorer = curve_of(video, np.full(24, 0.3)), stub_scorer()
    tracemalloc.start()
    try:
        page = write_report(curve, scorer, tmp_path / "page" / "noise.html", embed=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    uri = re.search(r'<video id="video" src="data:video/mp4;base64,([A-Za-z0-9+/=]+)"', page.read_text()).group(1)
    proxy = base64.b64decode(uri, validate=True)
    assert len(proxy) > 300_000 and peak < len(proxy), (len(proxy), peak)
    (tmp_path / "decoded.mp4").write_bytes(proxy)
    with av.open(str(tmp_path / "decoded.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 24
    assert [p.name for p in page.parent.iterdir()] == ["noise.html"]
