"""Fuzz targets shared by tests/test_fuzz.py (bounded, in CI) and bench/fuzz.py (longer runs).

Each target feeds one input to a front end of vad and returns normally or raises the one
exception type that front end promises (a clear message for the user); anything else, or a
hang, is a bug.
"""
from __future__ import annotations

import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

from hypothesis import strategies as st

from vad.extract.decode import DecodeError
from vad.extract.snippets import SnippetPlan, VideoSummary, iter_snippets
from vad.pipeline.importers import ImportError_, import_ucf_gt, import_xd_gt, read_frame_counts
from vad.tables import TableError, read_gt, read_labels

from videos import pattern_frames, write_lossless

VIDEO_SECONDS = 20  # a mutated file must decode (or be refused) within this


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: int):
    def expired(*_):
        raise Hang(f"no answer within {seconds}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _file(data: bytes, name: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="vad-fuzz-"))
    path = folder / name
    path.write_bytes(data)
    return path


def table_target(kind: str, data: bytes) -> str:
    """'accepted' or 'refused' (the importer's own error); raises anything else."""
    path = _file(data, "table.csv")
    try:
        if kind == "labels":
            read_labels(path, known_ids=["a", "b", "Abuse/Abuse001_x264"])
        elif kind == "gt":
            read_gt(path, known_ids=["a", "b"], n_frames={"a": 100, "b": 50})
        elif kind == "frame_counts":
            read_frame_counts([path])
        elif kind == "ucf_gt":
            import_ucf_gt(path, frame_counts={"a": 100})
        elif kind == "xd_gt":
            import_xd_gt(path, frame_counts={"a": 100})
    except (TableError, ImportError_):
        return "refused"
    finally:
        path.unlink()
        path.parent.rmdir()
    return "accepted"


TABLE_KINDS = ("labels", "gt", "frame_counts", "ucf_gt", "xd_gt")
TOKENS = ["video", "label", "start_frame", "end_frame", "a", "b", "0", "1", "-1", "normal", "abnormal", "100", "99999999999999999999",
          "1e3", "nan", "", " ", ",", "|", "[1, 2]", "\"", "\"a,b\"", "\x00", "é", "Abuse/Abuse001_x264.mp4", "\ufeff", "\r"]


HEADERS = {"labels": "video,label\n", "gt": "video,start_frame,end_frame\n"}


def table_inputs(kind: str = "") -> st.SearchStrategy[bytes]:
    """Raw bytes, and CSV-shaped lines built from the formats' own tokens, also after the
    format's header (reach past the header check)."""
    line = st.lists(st.sampled_from(TOKENS), max_size=6).map(lambda parts: st_join(parts))
    shaped = st.lists(line, max_size=8).map(lambda lines: "\n".join(lines))
    headed = shaped.map(lambda body: HEADERS.get(kind, "") + body)
    text = st.text(max_size=200)
    return st.one_of(st.binary(max_size=300), *(s.map(lambda t: t.encode("utf-8", "surrogatepass")) for s in (text, shaped, headed)))


def st_join(parts: list[str]) -> str:
    # comma-separated mostly (the CSVs); space-separated at 4 and 6 fields (UCF/XD annotation lines)
    return " ".join(parts) if len(parts) in (4, 6) else ",".join(parts)


_BASE: dict[str, bytes] = {}


def base_clip() -> bytes:
    """A real 24-frame H.264 clip (two snippets), made once per process."""
    if "clip" not in _BASE:
        folder = Path(tempfile.mkdtemp(prefix="vad-fuzz-"))
        _BASE["clip"] = write_lossless(folder / "base.mp4", pattern_frames(24, 48, 32, seed=5)).read_bytes()
    return _BASE["clip"]


def mutate(base: bytes, flips: list[tuple[float, int]], cut: float | None, dup: tuple[float, float] | None) -> bytes:
    data = bytearray(base)
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    if dup is not None:  # copy a chunk over another place: plausible container structure, wrong place
        start, dest = int(dup[0] * len(data)), int(dup[1] * len(data))
        chunk = data[start:start + 64]
        data[dest:dest + len(chunk)] = chunk
    if cut is not None:
        data = data[: int(cut * len(data))]
    return bytes(data)


def video_inputs() -> st.SearchStrategy[tuple]:
    unit = st.floats(0, 1, allow_nan=False)
    return st.tuples(st.lists(st.tuples(unit, st.integers(0, 255)), max_size=12), st.none() | unit,
                     st.none() | st.tuples(unit, unit), st.sampled_from(["auto", "pyav", "decord"]))


def video_target(data: bytes, decoder: str) -> str:
    """'decoded' (with n frames), or 'refused' (DecodeError); raises anything else."""
    path = _file(data, "clip.mp4")
    try:
        with time_limit(VIDEO_SECONDS):
            summary = VideoSummary()
            n = sum(1 for _ in iter_snippets(path, SnippetPlan(crops=1, decoder=decoder), summary))
        assert n == -(-summary.n_frames // 16), (n, summary.n_frames)
        return "decoded"
    except DecodeError:
        return "refused"
    finally:
        path.unlink()
        path.parent.rmdir()


# -- report pages: hostile names and provenance, checked in a browser ------------------------------
HOSTILE = ["<", ">", "&", "\"", "'", "`", "</script>", "<!--", "-->", "<script>", "<b>", "${", "\\", "\u2028", "\u2029", "é", "日本",
           "\U0001F600", "%20", "%", "#", "?", " ", "\t", "javascript:", "onerror=", "=", ";", "/", "..", "\x7f"]
# Payloads that would set window.__vadInjected if any of them ran: a page must show them as text.
PAYLOADS = ["<img src=x onerror=\"window.__vadInjected=1\">", "</script><script>window.__vadInjected=1</script>",
            "\"><svg onload=window.__vadInjected=1>", "'-alert(window.__vadInjected=1)-'"]


def page_inputs() -> st.SearchStrategy[tuple[str, dict]]:
    """(file name stem, provenance) from hostile tokens, payloads and any text."""
    token = st.sampled_from(HOSTILE + PAYLOADS)
    text = st.one_of(st.lists(token, min_size=1, max_size=6).map("".join), st.text(min_size=1, max_size=40))
    # a file name: no "/" or NUL, not "." / "..", short enough for any file system with the page's suffixes
    stem = text.map(lambda t: t.replace("/", "_").replace("\x00", "_")).filter(lambda t: t.strip(".") != "" and len(t.encode()) <= 150)
    provenance = st.dictionaries(st.sampled_from(["command", "cache", "backbone", "created", "note"]), text, max_size=4)
    return st.tuples(stem, provenance)


def visible(text: str) -> str:
    """Text as compared with what a browser shows: without whitespace, control and format characters
    (HTML collapses the first, drops or replaces the others: NUL becomes U+FFFD)."""
    import unicodedata

    return "".join(c for c in text if unicodedata.category(c)[0] not in "CZ" and c != "\ufffd")


class PageChecker:
    """Writes report pages for hostile names and provenance strings and checks them in Chromium:
    the page loads, shows the name and provenance as text, and nothing in them ran as script."""

    def __init__(self, folder: Path, driver):
        from vad.pipeline.report import Proxy, encode_proxy

        self.folder, self.driver = folder, driver
        self.video = write_lossless(folder / "base.mp4", pattern_frames(32, 96, 64, seed=4), fps=25)
        with open(folder / "base.proxy.mp4", "wb") as handle:
            self.proxy: Proxy = encode_proxy(self.video, 32, 25.0, handle)

    def __call__(self, stem: str, provenance: dict) -> str:
        import shutil

        import numpy as np

        from vad.pipeline.report import href, render_page
        from vad.pipeline.score import Curve, ScoreConfig, Scorer

        case = Path(tempfile.mkdtemp(prefix="vad-fuzz-page-", dir=self.folder))
        video = case / f"{stem}.mp4"
        proxy = case / f"{stem}.proxy.mp4"
        shutil.copy(self.video, video)
        shutil.copy(self.folder / "base.proxy.mp4", proxy)
        scores = np.linspace(0.0, 1.0, 32)
        curve = Curve(video, 25.0, 32, False, scores[::16].copy(), scores, 0.9, provenance)
        spec = type("Spec", (), {"name": "i3d-r50"})()
        engine = type("Engine", (), {"spec": spec, "plan": type("Plan", (), {"crops": 1})()})()
        scorer = Scorer(ScoreConfig(model=case / "model.pt", threshold=0.5), None, {"profile": "direct"}, engine, provenance)
        text = render_page(curve, scorer, video_src=href(proxy.name), csv=(href(f"{stem}.csv"), f"{stem}.csv"),
                           json_link=(href(f"{stem}.json"), f"{stem}.json"), gt=None, proxy=self.proxy)
        page = case / "page.html"
        page.write_text(text, encoding="utf-8")
        self.driver.get(page.as_uri())
        shown = self.driver.execute_script(
            "return {injected: window.__vadInjected === 1, title: document.title, body: document.body.innerText,"
            " data: typeof vadReport === 'object'};")
        if shown["injected"]:
            raise AssertionError("a name or provenance string ran as script")
        if not shown["data"]:
            raise AssertionError("the page's script did not start (vadReport missing)")
        if visible(f"{stem}.mp4") not in visible(shown["title"]):
            raise AssertionError(f"title {shown['title']!r} does not show the name")
        missing = [value for value in provenance.values() if visible(value) not in visible(shown["body"])]
        if missing:
            raise AssertionError(f"provenance not shown as text: {missing[0]!r}")
        shutil.rmtree(case)
        return "shown"


# -- vad watch sources: random bytes, truncated and size-changing MPEG-TS over HTTP on 127.0.0.1 ----
WATCH_SECONDS = 30  # a source must be scored or refused within this


def mpegts(frames, fps: int = 25) -> bytes:
    """An MPEG-TS (MPEG-2 video) of `frames`, as a camera or a recorder sends it."""
    from videos import write_codec

    folder = Path(tempfile.mkdtemp(prefix="vad-fuzz-"))
    data = write_codec(folder / "s.ts", frames, "mpeg2video", fps=fps).read_bytes()
    (folder / "s.ts").unlink()
    folder.rmdir()
    return data


def base_streams() -> dict[str, bytes]:
    """A 40-frame stream at 96x64, and one whose resolution changes half way (two streams back to back)."""
    if "streams" not in _BASE:
        small, large = pattern_frames(40, 96, 64, seed=1), pattern_frames(40, 160, 120, seed=2)
        _BASE["streams"] = {"plain": mpegts(small), "size_change": mpegts(small[:20]) + mpegts(large[20:])}
    return _BASE["streams"]


def watch_inputs() -> st.SearchStrategy[tuple]:
    """(which base stream or random bytes, cut point, byte flips)."""
    unit = st.floats(0, 1, allow_nan=False)
    return st.tuples(st.sampled_from(["plain", "size_change", "random"]), st.none() | unit,
                     st.lists(st.tuples(unit, st.integers(0, 255)), max_size=6), st.binary(max_size=2000))


class StreamServer:
    """Serves one payload as an MPEG-TS over HTTP on 127.0.0.1, then closes the connection."""

    def __init__(self):
        import http.server
        import threading

        self.payload = b""
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                try:
                    self.wfile.write(server.payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.ts"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def watch_target(server: StreamServer, scorer, case: tuple) -> str:
    """'scored' (some snippets) or 'refused' (vad's own error, one line); raises anything else."""
    import io
    import json

    from vad.errors import VadError
    from vad.pipeline.watch import watch

    kind, cut, flips, noise = case
    server.payload = noise if kind == "random" else mutate(base_streams()[kind], flips, cut, None)
    out = io.StringIO()
    try:
        with time_limit(WATCH_SECONDS):
            summary = watch(server.url, scorer=scorer, stdout=out, handle_signals=False, timeout=2.0, reconnect=0)
    except VadError as exc:
        if "\n" in str(exc).strip():
            raise AssertionError(f"a refusal of more than one line: {exc}") from None
        return "refused"
    records = [json.loads(line) for line in out.getvalue().splitlines()]  # every line is JSON
    if summary["scored"] != sum(1 for r in records if "event" not in r):
        raise AssertionError(f"summary says {summary['scored']} snippets, stdout has {len(records)} lines")
    return "scored" if summary["scored"] else "empty"


def watch_scorer(folder: Path):
    """The cheap scorer of tests/test_watch.py for the watch target."""
    from vad.pipeline.score import ScoreConfig, Scorer

    from cheap_model import write_cheap_r50_model
    from golden_r50 import write_weights

    weights = write_weights(folder / "i3d_r50_golden.pth")
    model = write_cheap_r50_model(folder / "watch.pt", weights)
    return Scorer.from_config(ScoreConfig(model=model, weights=weights, device="cpu", batch_size=1, decoder="pyav"))
