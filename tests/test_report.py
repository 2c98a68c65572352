"""`vad score --html`: the proxy video, the page's files and escaping, and the page itself in a real browser.

The browser tests drive Debian's headless chromium through chromedriver with Selenium, one
browser for the module, and skip only when chromium or chromedriver is not installed
(`.ci/run` installs both). The detector is the untrained test model of tests/test_score.py; the
scores it gives do not matter here, only that the page shows and recomputes exactly what the
CLI writes. Pages with chosen scores (`designed`) test the event logic on runs that do not
follow snippet edges, scores equal to the threshold, a 1-frame video and a curve below the
threshold everywhere.

VAD_REPORT_SCREENSHOT=docs/report.png saves the screenshot that test_screenshot_is_not_blank
takes (of VAD_REPORT_PAGE when set, e.g. a page of `vad demo`), for the README.
"""
from __future__ import annotations

import csv
import dataclasses
import html.parser
import io
import json
import os
import shutil
import time
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote

import av
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from test_score import make_model

from vad.errors import VadError
from vad.pipeline.cli import main
from vad.pipeline.plot import intervals_above
from vad.pipeline.report import encode_proxy, proxy_size, script_json, write_report
from vad.weights import sha256_file

from browser import chromium_missing, start_chromium
from paths import VIDEOS
from videos import pattern_frames, write_lossless

FPS = 25
SNIPPET = 16
WEIRD = 'a"<b>&ü'  # quotes, markup, an ampersand and unicode in a file name
# Chosen frame scores for 48 frames: runs that start and end inside snippets, a frame exactly at 0.5
# (not above it), a one-frame spike. Above 0.5: [10,13) [14,21) [31,32) [41,48).
DESIGNED = np.array([0.1] * 10 + [0.7] * 3 + [0.5] + [0.9] * 7 + [0.3] * 10 + [0.51] + [0.2] * 9 + [0.8] * 7)


def interval_frames(interval) -> tuple[int, int]:
    """(start, end) of an interval as `vad score --format json` writes it."""
    return (interval["start_frame"], interval["end_frame"]) if isinstance(interval, dict) else (interval[0], interval[1])


def run(*args):
    return CliRunner().invoke(main, [*map(str, args)])


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """alt.mp4: 48 frames, flat / noise / flat snippets (the untrained detector scores them far apart);
    one.mp4: a single frame; gt.csv: a ground-truth interval for alt."""
    folder = tmp_path_factory.mktemp("clips")
    frames = pattern_frames(48, seed=5)
    frames[:16] = 128
    frames[16:32] = np.random.default_rng(0).integers(0, 256, (16, *frames.shape[1:]), dtype=np.uint8)
    frames[32:] = 128
    (folder / "gt.csv").write_text("video,start_frame,end_frame\nalt,20,40\n")
    return {"alt": write_lossless(folder / "alt.mp4", frames, fps=FPS), "one": write_lossless(folder / "one.mp4", pattern_frames(1, seed=2), fps=FPS),
            "gt": folder / "gt.csv"}


@pytest.fixture(scope="module")
def model(tmp_path_factory, r50_weights_path) -> list:
    path = make_model(tmp_path_factory.mktemp("model") / "r50.pt", "i3d-r50", sha256_file(r50_weights_path))
    return ["--model", path, "--weights", r50_weights_path, "--device", "cpu"]


@pytest.fixture(scope="module")
def batch(tmp_path_factory, clips, model) -> dict:
    """`vad score alt.mp4 one.mp4 --out DIR --html DIR --format json --threshold 0.5 --gt gt.csv`."""
    out = tmp_path_factory.mktemp("batch")
    result = run("score", clips["alt"], clips["one"], *model, "--format", "json", "--threshold", 0.5, "--gt", clips["gt"],
                 "--out", out, "--html", out, "-q")
    assert result.exit_code == 0, result.output
    records = {name: json.loads((out / f"{name}.json").read_text()) for name in ("alt", "one")}
    return {"out": out, "summary": json.loads(result.stdout.strip().splitlines()[-1]), "records": records}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, clips, model) -> dict:
    """`vad score alt.mp4 --format json --threshold 0 --html page/alt0.html --html-embed`: one video, stdout, one file."""
    folder = tmp_path_factory.mktemp("embedded")
    result = run("score", clips["alt"], *model, "--format", "json", "--threshold", 0, "--html", folder / "alt0.html", "--html-embed", "-q")
    assert result.exit_code == 0, result.output
    return {"page": folder / "alt0.html", "record": json.loads(result.stdout)}


@pytest.fixture(scope="module")
def scorer(model):
    from vad.pipeline.api import load_scorer

    return load_scorer(model[1], weights=model[3], device="cpu", threshold=0.5)


def curve_with(scorer, video: Path, scores: np.ndarray):
    """A Curve of `video` whose frame scores are `scores` (snippet scores: each snippet's first frame)."""
    from vad.pipeline.score import Curve

    scores = np.asarray(scores, dtype=np.float64)
    return Curve(video, float(FPS), len(scores), False, scores[::SNIPPET].copy(), scores, float(scores.max()), scorer.provenance)


@pytest.fixture(scope="module")
def designed(tmp_path_factory, clips, scorer) -> dict:
    folder = tmp_path_factory.mktemp("designed")
    curve = curve_with(scorer, clips["alt"], DESIGNED)
    low = curve_with(scorer, clips["alt"], np.full(48, 0.2))
    weird_video = folder / f"{WEIRD}.mp4"
    shutil.copy(clips["alt"], weird_video)
    return {"curve": curve, "page": write_report(curve, scorer, folder / "designed.html", gt=[(12, 30)]),
            "low": write_report(low, scorer, folder / "low.html"),
            "weird": write_report(dataclasses.replace(curve, path=weird_video), scorer, folder / f"{WEIRD}.html"), "folder": folder}


# -- the proxy, the files, escaping (no browser) --------------------------------------------------
def test_proxy_size_keeps_aspect_with_even_sides():
    assert proxy_size(320, 240) == (320, 240)
    assert proxy_size(1920, 1080) == (640, 360)
    assert proxy_size(1080, 1920) == (360, 640)
    assert proxy_size(97, 65) == (98, 66)
    assert proxy_size(1, 1) == (2, 2)


def decoded(data: bytes) -> tuple[av.video.stream.VideoStream, list]:
    container = av.open(io.BytesIO(data))
    stream = container.streams.video[0]
    frames = list(container.decode(video=0))
    return stream, frames


def test_proxy_has_the_curves_frames_and_timing(tmp_path):
    """29.97 fps: frame i at i * 1001/30000 s, all 120 frames, H.264 yuv420p, the source's even size."""
    buffer = io.BytesIO()
    proxy = encode_proxy(VIDEOS / "carphone_pristine.mp4", 120, 30000 / 1001, buffer)
    assert (proxy.width, proxy.height, proxy.n_frames, proxy.rate, proxy.repeated) == (176, 144, 120, Fraction(30000, 1001), 0)
    stream, frames = decoded(buffer.getvalue())
    assert (stream.codec_context.name, stream.codec_context.pix_fmt, stream.average_rate) == ("h264", "yuv420p", Fraction(30000, 1001))
    assert len(frames) == 120
    assert [frame.time for frame in frames] == pytest.approx([i * 1001 / 30000 for i in range(120)], abs=1e-4)


def test_proxy_shrinks_large_video_and_fills_a_short_redecode(tmp_path):
    video = write_lossless(tmp_path / "wide.mp4", pattern_frames(3, width=1280, height=720), fps=FPS)
    buffer = io.BytesIO()
    proxy = encode_proxy(video, 5, FPS, buffer)  # the curve says 5 frames, the file holds 3
    assert (proxy.width, proxy.height, proxy.repeated) == (640, 360, 2)
    stream, frames = decoded(buffer.getvalue())
    assert [(f.width, f.height) for f in frames] == [(640, 360)] * 5
    assert [f.time for f in frames] == pytest.approx([i / FPS for i in range(5)])
    first = frames[0].to_ndarray(format="rgb24").astype(int)
    small = np.asarray(Image.fromarray(pattern_frames(3, width=1280, height=720)[0]).resize((640, 360), Image.BOX)).astype(int)
    assert np.abs(first - small).mean() < 8  # the picture, not just its size


def test_script_json_cannot_close_the_script():
    text = script_json({"name": "</script><script>alert(1)</script><!-- & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"name": "</script><script>alert(1)</script><!-- & \u2028"}


class Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.title, self.scripts, self._in = [], [], "", [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.append((tag, dict(attrs)))
        self._in = tag

    def handle_data(self, data):
        if self._in == "title":
            self.title += data
        if self._in == "script":
            self.scripts.append(data)

    def handle_endtag(self, tag):
        self._in = None


def test_names_with_quotes_markup_and_unicode_are_escaped(designed):
    page = designed["weird"]
    parsed = Tags()
    parsed.feed(page.read_text(encoding="utf-8"))
    assert "b" not in parsed.tags  # the name's <b> stayed text
    assert parsed.title.startswith(f"{WEIRD}.mp4")
    data = json.loads(next(s for s in parsed.scripts if s.lstrip().startswith("{")))
    assert data["name"] == f"{WEIRD}.mp4" and data["n_frames"] == 48
    links = {attrs.get("id"): attrs for tag, attrs in parsed.attrs if tag in ("a", "video")}
    for key, suffix in (("video", ".proxy.mp4"), ("download-csv", ".csv"), ("download-json", ".json")):
        target = links[key].get("src") or links[key]["href"]
        assert '"' not in target and "<" not in target and "&" not in target
        assert unquote(target) == f"{WEIRD}{suffix}" and (page.parent / unquote(target)).is_file()


def test_page_may_not_overwrite_its_video(tmp_path, scorer):
    video = shutil.copy(VIDEOS / "carphone_pristine.mp4", tmp_path / "x.proxy.mp4")
    curve = curve_with(scorer, Path(video), np.full(120, 0.3))
    with pytest.raises(VadError, match="would overwrite the video"):
        write_report(curve, scorer, tmp_path / "x.html")
    assert Path(video).read_bytes() == (VIDEOS / "carphone_pristine.mp4").read_bytes()


def test_html_usage_errors(tmp_path, clips):
    result = run("score", clips["alt"], "--html-embed")
    assert result.exit_code == 2 and "--html-embed" in result.stderr and "--html PATH" in result.stderr
    result = run("score", clips["alt"], clips["one"], "--out", tmp_path, "--html", tmp_path / "page.html")
    assert result.exit_code == 2 and "one page for 2 videos" in result.stderr
    index = shutil.copy(clips["one"], tmp_path / "index.mp4")
    result = run("score", index, "--html", tmp_path / "report")
    assert result.exit_code == 2 and "index.html, the folder's index page" in result.stderr


def test_batch_writes_pages_beside_their_files(batch):
    out, summary = batch["out"], batch["summary"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        [f"{name}{suffix}" for name in ("alt", "one") for suffix in (".html", ".proxy.mp4", ".csv", ".json")]
        + ["index.html", "summary.csv", "events.csv"])
    assert [f["html"] for f in summary["files"]] == [str(out / "alt.html"), str(out / "one.html")] and summary["index"] == str(out / "index.html")
    assert (summary["summary"], summary["events"]) == (str(out / "summary.csv"), str(out / "events.csv"))
    assert batch["records"]["alt"]["threshold"] == 0.5
    rows = (out / "alt.csv").read_text().splitlines()
    assert rows[0] == "frame,time_s,score" and len(rows) == 49
    # the archive summary: highest video score first, events as the JSON's intervals (pipeline/archive.py)
    records = batch["records"]
    ids = sorted(records, key=lambda n: -records[n]["video_score"])
    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == ids and all(r["status"] == "ok" for r in rows)
    for row in rows:
        record = records[row["id"]]
        assert float(row["video_score"]) == pytest.approx(record["video_score"], abs=1e-6) and int(row["n_frames"]) == record["n_frames"]
        assert int(row["n_events"]) == len(record["intervals"]) and float(row["duration_s"]) == pytest.approx(record["n_frames"] / FPS, abs=1e-3)
    with open(out / "events.csv", newline="") as handle:
        events = [(e["id"], int(e["start_frame"]), int(e["end_frame"])) for e in csv.DictReader(handle)]
    assert events == [(n, *interval_frames(i)) for n in ids for i in records[n]["intervals"]]


def test_embedded_page_is_one_file(embedded):
    page = embedded["page"]
    assert [p.name for p in page.parent.iterdir()] == ["alt0.html"]
    parsed = Tags()
    parsed.feed(page.read_text())
    links = {attrs.get("id"): attrs for tag, attrs in parsed.attrs if tag in ("a", "video")}
    assert links["video"]["src"].startswith("data:video/mp4;base64,")
    assert links["download-csv"]["href"].startswith("data:text/csv;base64,") and links["download-csv"]["download"] == "alt0.csv"
    assert links["download-json"]["href"].startswith("data:application/json;base64,")


# -- in the browser -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = chromium_missing()
    if missing:
        pytest.skip(missing)
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def open_page(driver, page: Path, video: bool = True) -> dict | None:
    """Load `page` from file://, and wait for its video's metadata; returns the video's state."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(page.as_uri())
    if not video:
        return None
    return WebDriverWait(driver, 20).until(lambda d: d.execute_script(
        "const v = document.getElementById('video');"
        "return v.readyState >= 1 || v.error ? {ready: v.readyState, duration: v.duration, error: v.error && v.error.code} : null;"))


def console_errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def rows(driver) -> int:
    return js(driver, "return document.querySelector('#events tbody').rows.length;")


def page_events(driver, threshold) -> list[tuple[int, int]]:
    return [(e["start_frame"], e["end_frame"]) for e in js(driver, "return vadReport.events(arguments[0]);", threshold)]


def set_slider(driver, value: float) -> None:
    """As a script would: the value, then the input event the slider fires when dragged."""
    js(driver, "const s = document.getElementById('threshold'); s.value = arguments[0]; s.dispatchEvent(new Event('input'));", str(value))


def current_time(driver) -> float:
    return js(driver, "return document.getElementById('video').currentTime;")


def assert_local_only(driver) -> None:
    """No request left the machine: every resource and link is a file: or data: URL."""
    urls = js(driver, "return performance.getEntriesByType('resource').map(e => e.name)"
                      ".concat(Array.from(document.querySelectorAll('[src], [href]'), e => e.src || e.href));")
    assert urls and all(u.startswith(("file:", "data:")) for u in urls), urls


def test_cli_page_shows_what_the_cli_wrote(browser, batch):
    record = batch["records"]["alt"]
    state = open_page(browser, batch["out"] / "alt.html")
    assert state["error"] is None and state["ready"] >= 1
    assert abs(state["duration"] - 48 / FPS) <= 1 / FPS
    report = js(browser, "const r = window.vadReport; return {fps: r.fps, n_frames: r.n_frames, duration_s: r.duration_s, "
                         "scores: r.scores, threshold: r.threshold, gt: r.gt};")
    assert (report["fps"], report["n_frames"], report["duration_s"], report["threshold"]) == (25, 48, 1.92, 0.5)
    assert np.allclose(report["scores"], record["scores"], atol=1e-4, rtol=0)  # the page rounds up to 4 decimals
    assert report["gt"] == [[20, 40]]  # --gt's interval for alt
    cli = [(i["start_frame"], i["end_frame"]) for i in record["intervals"]]
    assert cli and page_events(browser, 0.5) == cli and rows(browser) == len(cli)
    assert js(browser, "return document.getElementById('threshold').value;") == "0.5"
    assert_local_only(browser)
    assert console_errors(browser) == []


def test_slider_gives_the_cli_intervals(browser, batch, embedded):
    """Moved by keyboard on the CLI's page: at 0 the rows are what `vad score --threshold 0` printed, at 1 none."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(browser, batch["out"] / "alt.html")
    slider = browser.find_element(By.ID, "threshold")
    slider.send_keys(Keys.HOME)
    zero = [(i["start_frame"], i["end_frame"]) for i in embedded["record"]["intervals"]]
    assert js(browser, "return vadReport.threshold;") == 0
    assert rows(browser) == len(zero) == len(page_events(browser, 0)) and page_events(browser, 0) == zero
    slider.send_keys(Keys.END)
    assert js(browser, "return vadReport.threshold;") == 1 and rows(browser) == 0
    slider.send_keys(Keys.ARROW_LEFT)
    assert js(browser, "return vadReport.threshold;") == 0.99
    assert rows(browser) == len(intervals_above(batch["records"]["alt"]["scores"], 0.99))
    assert console_errors(browser) == []


def test_slider_recomputes_events_as_intervals_above(browser, designed):
    open_page(browser, designed["page"])
    scores = designed["curve"].frame_scores
    assert page_events(browser, 0.5) == [(10, 13), (14, 21), (31, 32), (41, 48)] == intervals_above(scores, 0.5)
    for threshold in (0, 0.1, 0.29, 0.3, 0.5, 0.51, 0.7, 0.85, 0.9, 1):
        set_slider(browser, threshold)
        expected = intervals_above(scores, threshold)
        assert js(browser, "return vadReport.threshold;") == threshold
        assert page_events(browser, threshold) == expected and rows(browser) == len(expected), threshold
        peaks = js(browser, "return vadReport.events(arguments[0]).map(e => e.peak);", threshold)
        assert peaks == [float(scores[s:e].max()) for s, e in expected]
    for threshold in (0.4999999, 0.5000001, -1, 2):  # off the slider's grid: the function alone
        assert page_events(browser, threshold) == intervals_above(scores, threshold)
    set_slider(browser, 0.5)
    cells = js(browser, "return Array.from(document.querySelector('#events tbody').rows[1].cells, c => c.textContent);")
    assert cells == ["2", "0.56 s (frame 14)", "0.84 s (frame 21)", "0.28 s", "0.900", "0.56 s"]
    assert console_errors(browser) == []


def test_curve_clicks_rows_and_keys_seek_the_video(browser, designed):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(browser, designed["page"])
    curve = browser.find_element(By.ID, "curve")
    width = curve.rect["width"]
    duration = 48 / FPS
    for fraction in (0.1, 0.45, 0.8):
        offset = round(fraction * width - width / 2)  # Selenium offsets are from the element's centre
        ActionChains(browser).move_to_element_with_offset(curve, offset, 0).click().perform()
        clicked = (width / 2 + offset) / width * duration
        assert abs(current_time(browser) - clicked) <= SNIPPET / FPS
        assert abs(current_time(browser) - clicked) <= 1 / FPS  # in fact within a frame
        playhead = js(browser, "const p = document.getElementById('playhead').getBoundingClientRect(), "
                               "c = document.getElementById('curve').getBoundingClientRect(); return (p.left + p.width / 2 - c.left) / c.width;")
        assert playhead == pytest.approx(current_time(browser) / duration, abs=0.01)
    browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")[3].click()  # the event starting at frame 41
    assert js(browser, "return vadReport.frameAt(arguments[0]);", current_time(browser)) == 41
    assert "current" in browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")[3].get_attribute("class")
    keys = ActionChains(browser)
    js(browser, "document.activeElement.blur(); vadReport.seekFrame(5);")
    frames = []
    for key in (Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_LEFT, Keys.ARROW_LEFT, Keys.ARROW_LEFT):
        keys.send_keys(key).perform()
        frames.append(js(browser, "return vadReport.frameAt(arguments[0]);", current_time(browser)))
    assert frames == [16, 32, 32, 16, 0, 0]  # snippet starts; no snippet after 32 in 48 frames, none before 0
    assert js(browser, "return document.getElementById('video').paused;") is True
    keys.send_keys(" ").perform()
    assert js(browser, "return document.getElementById('video').paused;") is False
    keys.send_keys(" ").perform()
    assert js(browser, "return document.getElementById('video').paused;") is True
    assert console_errors(browser) == []


def test_one_frame_video_and_a_curve_below_the_threshold(browser, batch, designed):
    state = open_page(browser, batch["out"] / "one.html")
    assert state["ready"] >= 1 and abs(state["duration"] - 1 / FPS) <= 1 / FPS
    assert js(browser, "return [vadReport.n_frames, vadReport.scores.length];") == [1, 1]
    assert rows(browser) == len(batch["records"]["one"]["intervals"])
    js(browser, "vadReport.seekFrame(0);")
    assert js(browser, "return vadReport.frameAt(arguments[0]);", current_time(browser)) == 0
    assert console_errors(browser) == []

    state = open_page(browser, designed["low"])
    assert state["ready"] >= 1
    assert page_events(browser, 0.5) == [] and rows(browser) == 0
    assert js(browser, "return document.getElementById('no-events').hidden;") is False
    assert console_errors(browser) == []


def test_escaped_name_and_embedded_page_play(browser, designed, embedded):
    state = open_page(browser, designed["weird"])
    assert state["error"] is None and abs(state["duration"] - 48 / FPS) <= 1 / FPS
    assert js(browser, "return document.querySelector('h1').textContent;") == f"{WEIRD}.mp4"
    assert js(browser, "return document.querySelectorAll('b').length;") == 0
    csv = js(browser, "return document.getElementById('download-csv').href;")
    assert Path(unquote(csv.removeprefix("file://"))) == designed["folder"] / f"{WEIRD}.csv"
    assert console_errors(browser) == []

    state = open_page(browser, embedded["page"])
    assert state["error"] is None and abs(state["duration"] - 48 / FPS) <= 1 / FPS
    cli = [(i["start_frame"], i["end_frame"]) for i in embedded["record"]["intervals"]]
    assert page_events(browser, 0) == cli and rows(browser) == len(cli)  # the page starts at the CLI's --threshold 0
    assert_local_only(browser)
    assert console_errors(browser) == []


def test_a_long_video_page_draws_its_maxima(browser, designed, scorer):
    """100,000 frames at 0.2 with a 1-frame spike of 0.9 at frame 61,234: the page holds the maxima of 10 frames
    and still draws: the curve crosses the plot, the spike reaches the 0.9 level, events(0.5) is the spike's
    10 frames. (The page shows the designed clip's proxy: its drawing does not depend on the video.)"""
    from vad.pipeline.report import Proxy, href, render_page

    scores = np.full(100_000, 0.2)
    scores[61_234] = 0.9
    curve = dataclasses.replace(designed["curve"], n_frames=100_000, frame_scores=scores, snippet_scores=scores[::SNIPPET].copy())
    page = designed["folder"] / "long.html"
    page.write_text(render_page(curve, scorer, video_src=href("designed.proxy.mp4"), csv=(href("long.csv"), "long.csv"),
                                json_link=(href("long.json"), "long.json"), gt=None, proxy=Proxy(96, 64, 48, Fraction(FPS), 0)), encoding="utf-8")
    open_page(browser, page)
    assert js(browser, "return [vadReport.frames_per_point, vadReport.scores.length];") == [10, 10_000]
    assert js(browser, "return vadReport.events(0.5);") == [{"start_frame": 61_230, "end_frame": 61_240, "peak": 0.9, "peak_frame": 61_230}]
    assert rows(browser) == 1
    ink = js(browser, """
        const c = document.querySelector('#curve canvas'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const top = [];  // per column: the highest pixel of the curve's dark ink, or -1
        for (let x = 0; x < c.width; x++) {
          top.push(-1);
          for (let y = 0; y < c.height; y++) {
            const i = 4 * (y * c.width + x);
            if (d[i] < 100 && d[i + 1] < 100 && d[i + 2] < 100 && d[i + 3] > 200) { top[x] = y; break; }
          }
        }
        return {top: top, height: c.height, ratio: window.devicePixelRatio || 1};""")
    top, height, ratio = ink["top"], ink["height"], ink["ratio"]
    assert np.mean([y >= 0 for y in top]) > 0.95  # the curve crosses the plot
    pad = 4 * ratio
    level = {s: pad + (1 - s) * (height - 2 * pad) for s in (0.2, 0.9)}  # the page's y of a score
    spike = round(61_234 / 100_000 * len(top))
    assert min(y for y in top[spike - 3:spike + 4] if y >= 0) == pytest.approx(level[0.9], abs=3)
    assert np.median([y for y in top if y >= 0]) == pytest.approx(level[0.2], abs=3)
    assert console_errors(browser) == []


def test_index_links_the_pages(browser, batch):
    from selenium.webdriver.common.by import By

    open_page(browser, batch["out"] / "index.html", video=False)
    table = js(browser, "return Array.from(document.querySelectorAll('#videos tbody tr'), r => Array.from(r.cells, c => c.textContent));")
    records = batch["records"]
    ids = sorted(records, key=lambda n: -records[n]["video_score"])  # the archive page (pipeline/archive.py): highest score first
    facts = {"alt": ("alt", "1.92 s", str(len(records["alt"]["intervals"]))), "one": ("one", "0.04 s", "0")}
    assert [(r[0], r[1], r[3]) for r in table] == [facts[n] for n in ids]
    assert [float(r[2]) for r in table] == pytest.approx([records[n]["video_score"] for n in ids], abs=1e-3)
    assert js(browser, "return document.querySelectorAll('#videos svg polyline').length;") == 2
    browser.find_element(By.LINK_TEXT, "alt").click()
    assert browser.current_url == (batch["out"] / "alt.html").as_uri()
    assert console_errors(browser) == []


def test_screenshot_is_not_blank(browser, designed):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chosen = os.environ.get("VAD_REPORT_PAGE")
    open_page(browser, Path(chosen) if chosen else designed["page"])
    # a frame of the noise snippet of the designed page; on a chosen page, the peak of its highest event
    frame = js(browser, "const e = vadReport.events(vadReport.threshold).sort((a, b) => b.peak - a.peak)[0]; return e ? e.peak_frame : 0;") if chosen else 24
    js(browser, "const v = document.getElementById('video'); v.dataset.seeked = ''; v.addEventListener('seeked', () => v.dataset.seeked = '1', "
                "{once: true}); vadReport.seekFrame(arguments[0]);", frame)
    WebDriverWait(browser, 10).until(lambda d: js(d, "return document.getElementById('video').dataset.seeked === '1';"))
    WebDriverWait(browser, 10).until(lambda d: js(d, "return document.getElementById('video').readyState >= 3;"))
    if os.environ.get("VAD_REPORT_SCREENSHOT"):
        time.sleep(2)  # for the README: until the controls' loading indicator has faded
    browser.execute_async_script("const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done()));")
    shot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    pixels = np.asarray(shot.convert("L"), dtype=np.float64)
    assert pixels.std() > 20 and (pixels < 200).mean() > 0.02
    box = browser.find_element(By.ID, "curve").rect  # its 1-pixel borders left and bottom
    plot = np.asarray(shot.crop((box["x"] + 1, box["y"], box["x"] + box["width"], box["y"] + box["height"] - 1)), dtype=np.int64)
    grey = (plot.max(axis=2) < 160) & (plot.max(axis=2) - plot.min(axis=2) < 40)  # the curve's ink, not the red, blue or shading
    assert grey.any(axis=0).mean() > 0.95  # the curve's line crosses the plot
    frame = browser.find_element(By.ID, "video").rect
    picture = np.asarray(shot.crop((frame["x"], frame["y"], frame["x"] + frame["width"], frame["y"] + frame["height"] * 0.6)).convert("L"))
    assert picture.std() > 5  # the video's picture, not an empty box
    if os.environ.get("VAD_REPORT_SCREENSHOT"):
        shot.save(os.environ["VAD_REPORT_SCREENSHOT"], optimize=True)
    assert console_errors(browser) == []
