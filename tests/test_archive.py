"""The archive summary (pipeline/archive.py): summary.csv, events.csv and the archive page.

The records and files are checked on chosen scores (the files of real runs: tests/test_score.py
test_real_clips_batch_with_a_broken_file, tests/test_report.py's batch); the page is checked in
headless Chromium on 10,000 generated rows (no scoring): first paint, sorting, filtering by
text and by minimum score, paging, each under a stated bound, and a hostile id shown as text.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

from vad.errors import ConfigError
from vad.pipeline.archive import EVENTS_HEADER, SUMMARY_HEADER, Archive, check_outputs, failed_record, video_record, write_page

from browser import chromium_missing, start_chromium

FPS = 25
HOSTILE = '</script><img src=x onerror="window.pwned=1">&amp;<b>'
# Above 0.5: [10,13) peak 0.7 at 10, [14,21) peak 0.9 at 14, [31,32) 0.51, [41,48) 0.8 at 41.
DESIGNED = np.array([0.1] * 10 + [0.7] * 3 + [0.5] + [0.9] * 7 + [0.3] * 10 + [0.51] + [0.2] * 9 + [0.8] * 7)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_record_events_are_the_runs_above_the_threshold():
    record = video_record("a", DESIGNED, FPS, 0.6, 0.5)
    assert [(s, e) for s, e, _, _ in record["events"]] == [(10, 13), (14, 21), (31, 32), (41, 48)]
    assert [(p, f) for _, _, p, f in record["events"]] == [(0.7, 10), (0.9, 14), (0.51, 31), (0.8, 41)]
    assert record["n_events"] == 4 and record["max_event_s"] == pytest.approx(7 / FPS) and record["top_event_start_s"] == pytest.approx(14 / FPS)
    assert record["duration_s"] == pytest.approx(48 / FPS) and record["status"] == "ok"
    calm = video_record("b", np.full(30, 0.2), FPS, 0.2, 0.5, partial=True)
    assert calm["n_events"] == 0 and calm["max_event_s"] is None and calm["top_event_start_s"] is None and calm["status"] == "partial"


class FakeCurve:
    def __init__(self, name, scores, video_score):
        self.path, self.frame_scores, self.fps, self.video_score, self.partial = Path(f"/v/{name}.mp4"), np.asarray(scores), FPS, video_score, False


def test_files_are_sorted_by_video_score_with_failures_last(tmp_path):
    archive = Archive(0.5, out=tmp_path)
    archive.add(FakeCurve("low", np.full(10, 0.1), 0.1))
    archive.add_failure(Path("/v/broken.mp4"), "cannot decode")
    archive.add(FakeCurve("high", DESIGNED, 0.9))
    archive.add(FakeCurve("mid", [0.1, 0.6, 0.6, 0.1], 0.4), video_id="x/mid")
    written = archive.finish()
    assert written == {"summary": tmp_path / "summary.csv", "events": tmp_path / "events.csv"}
    assert (tmp_path / "summary.csv").read_text().splitlines()[0] == ",".join(SUMMARY_HEADER)
    rows = read_csv(tmp_path / "summary.csv")
    assert [r["id"] for r in rows] == ["high", "x/mid", "low", "broken"]
    assert rows[0] == {"id": "high", "video_score": "0.900000", "n_frames": "48", "duration_s": "1.920", "n_events": "4",
                       "max_event_s": "0.280", "top_event_start_s": "0.560", "status": "ok"}
    assert rows[2]["n_events"] == "0" and rows[2]["max_event_s"] == ""
    assert rows[3] == {"id": "broken", "video_score": "", "n_frames": "", "duration_s": "", "n_events": "", "max_event_s": "",
                       "top_event_start_s": "", "status": "failed: cannot decode"}
    assert (tmp_path / "events.csv").read_text().splitlines()[0] == ",".join(EVENTS_HEADER)
    events = read_csv(tmp_path / "events.csv")
    assert [(e["id"], e["start_frame"], e["end_frame"]) for e in events] == [
        ("high", "10", "13"), ("high", "14", "21"), ("high", "31", "32"), ("high", "41", "48"), ("x/mid", "1", "3")]
    assert events[1] == {"id": "high", "start_frame": "14", "end_frame": "21", "start_s": "0.560", "end_s": "0.840",
                         "peak_score": "0.900000", "peak_s": "0.560"}
    assert list(tmp_path.iterdir()) and sorted(p.name for p in tmp_path.iterdir()) == ["events.csv", "summary.csv"]  # no temporary left


def test_outputs_in_the_way_are_refused(tmp_path):
    check_outputs([tmp_path / "a.mp4"], tmp_path, "csv", None)
    with pytest.raises(ConfigError, match="summary.mp4: its scores would be written as .*summary.csv"):
        check_outputs([tmp_path / "summary.mp4"], tmp_path, "csv", None)
    check_outputs([tmp_path / "summary.mp4"], tmp_path, "json", None)  # summary.json is no archive file
    (tmp_path / "events.csv").write_text("my,own,notes\n")
    with pytest.raises(ConfigError, match="events.csv: a file that vad did not write"):
        check_outputs([tmp_path / "a.mp4"], tmp_path, "json", None)
    (tmp_path / "events.csv").write_text(",".join(EVENTS_HEADER) + "\n")
    check_outputs([tmp_path / "a.mp4"], tmp_path, "json", None)  # an earlier run's file is overwritten


# -- the page in a browser ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if reason := chromium_missing():
        pytest.skip(reason)
    driver = start_chromium(tmp_path_factory.mktemp("chromium"))
    yield driver
    driver.quit()


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def generated_records(n: int) -> list[dict]:
    """n records as a run would stream them (highest score first), with sparklines; one failed, one hostile id."""
    rng = np.random.default_rng(1)
    scores = np.sort(rng.random(n))[::-1]
    records = []
    for k, score in enumerate(scores):
        n_frames = int(rng.integers(100, 100_000))
        record = failed_record(f"cam{k % 97:02d}/clip_{k:05d}", "cannot decode") if k == n - 1 else {
            "id": f"cam{k % 97:02d}/clip_{k:05d}", "video_score": float(score), "n_frames": n_frames, "fps": 25.0, "duration_s": n_frames / 25,
            "n_events": int(rng.integers(0, 20)), "max_event_s": float(rng.random() * 30), "top_event_start_s": float(rng.random() * 100),
            "status": "ok", "page": f"cam{k % 97:02d}/clip_{k:05d}.html", "events": [], "spark": rng.random(120).round(3).tolist()}
        records.append(record)
    records[5]["id"], records[5]["page"] = HOSTILE, None  # shown as text, not a link
    records[6]["id"] = records[6]["page"] = HOSTILE  # shown as a link's text
    return records


def test_page_of_ten_thousand_rows(browser, tmp_path):
    from selenium.webdriver.common.by import By

    n = 10_000
    page = write_page(generated_records(n), tmp_path / "index.html", threshold=0.5)
    started = time.perf_counter()
    browser.get(page.as_uri())
    first_paint = time.perf_counter() - started
    assert first_paint < 5.0, f"first paint took {first_paint:.2f} s"  # 10,000 rows with sparklines (~8 MB): about 0.5 s here
    body = "return Array.from(document.querySelectorAll('#videos tbody tr'), r => r.cells[0].textContent);"
    shown = js(browser, body)
    assert len(shown) == 100 and shown[0] == "cam00/clip_00000"
    assert js(browser, "return window.pwned;") is None
    assert shown[5] == shown[6] == HOSTILE and js(browser, "return document.querySelectorAll('#videos tbody img, #videos tbody b').length;") == 0
    assert js(browser, "return document.querySelectorAll('#videos tbody tr')[6].querySelector('a').getAttribute('href');") == HOSTILE
    assert js(browser, "return document.querySelector('#videos tbody a').getAttribute('href');") == "cam00/clip_00000.html"
    assert js(browser, "return document.querySelectorAll('#videos tbody svg polyline').length;") == 100

    def timed(script, *args):
        return js(browser, f"const t = performance.now(); {script}; return performance.now() - t;", *args)

    # sorting: a click on a heading (duration: longest first), then again (shortest first); blanks (the failed video) last
    durations = js(browser, "return vadArchive.rows.map(r => r[1]).filter(v => v !== null);")
    ms = timed("document.querySelectorAll('#heads th button')[1].click()")
    assert ms < 500, f"sorting took {ms:.0f} ms"
    top = js(browser, "return Array.from(document.querySelectorAll('#videos tbody tr'), r => parseFloat(r.cells[1].textContent));")
    assert top == pytest.approx([round(v, 2) for v in sorted(durations, reverse=True)[:100]], abs=0.006)
    timed("document.querySelectorAll('#heads th button')[1].click()")
    assert js(browser, "return vadArchive.state.desc;") is False
    js(browser, "vadArchive.go(vadArchive.pages() - 1);")
    assert js(browser, body)[-1] == f"cam{(n - 1) % 97:02d}/clip_{n - 1:05d}"  # the failed one
    # by id text, through the box as a user types
    box = browser.find_element(By.ID, "filter")
    box.send_keys("CAM07/clip_0")
    ms = timed("const b = document.getElementById('filter'); b.dispatchEvent(new Event('input'))")
    assert ms < 300, f"filtering by text took {ms:.0f} ms"
    want = sum(1 for k in range(n) if k % 97 == 7 and k < 10_000 and f"{k:05d}".startswith("0") and k != 5)
    assert js(browser, "return vadArchive.matching();") == want
    assert all(i.startswith("cam07/clip_0") for i in js(browser, body))
    box.clear()
    # by minimum score
    ms = timed("const m = document.getElementById('min-score'); document.getElementById('filter').value = ''; m.value = '0.9';"
               "m.dispatchEvent(new Event('input'))")
    assert ms < 300, f"filtering by score took {ms:.0f} ms"
    scores = js(browser, "return vadArchive.rows.map(r => r[2]);")
    assert js(browser, "return vadArchive.matching();") == sum(1 for s in scores if s is not None and s >= 0.9)
    assert all(float(r) >= 0.9 for r in js(browser, "return Array.from(document.querySelectorAll('#videos tbody tr'), r => r.cells[2].textContent);"))
    # paging: next goes 100 rows on, and the last page holds the rest
    js(browser, "const m = document.getElementById('min-score'); m.value = ''; m.dispatchEvent(new Event('input'));")
    first = js(browser, body)
    ms = timed("document.getElementById('next').click()")
    assert ms < 200, f"paging took {ms:.0f} ms"
    second = js(browser, body)
    assert len(second) == 100 and not set(first) & set(second)
    assert js(browser, "return document.getElementById('page-info').textContent;") == f"page 2 of {n // 100}"
    assert js(browser, "return document.getElementById('prev').disabled;") is False
    logs = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert logs == []
