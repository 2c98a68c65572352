"""Bad videos: one `vad extract` batch over a folder of broken and unusual files plus a good one.

Each case: a clear one-line reason, the batch continues, failures land in failures.jsonl, exit
code 1 (a batch in which some item failed), nothing half-written in the cache.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from vad.extract.cache import FeatureCache
from vad.extract.decode import DecodeError, decord_chunk, open_video, read_all_frames
from vad.pipeline.cli import main

from videos import pattern_frames, write_lossless

W, H = 64, 48


def write_encoded(path: Path, frames: np.ndarray, codec: str, pix_fmt: str, vfr: bool = False, faststart: bool = False) -> Path:
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        stream.options = {"qp": "0", "preset": "ultrafast"} if codec.startswith("libx264") else {}
        if vfr:
            stream.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            if vfr:  # 20, 40, 67, 33 ms apart: no constant rate
                frame.pts, frame.time_base = pts, stream.codec_context.time_base
                pts += (20, 40, 67, 33)[i % 4]
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_audio_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        rng = np.random.default_rng(0)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(rng.uniform(-0.1, 0.1, (1, 1024)).astype(np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


ONE = 1 << 16  # 1.0 in the matrix's 16.16 fixed point
# Clockwise display rotation (what phones write: 90 for a portrait clip) -> tkhd matrix a, b, c, d.
TKHD_ROTATIONS = {90: (0, ONE, -ONE, 0), 180: (-ONE, 0, 0, -ONE), 270: (0, -ONE, ONE, 0)}


def set_rotation(path: Path, clockwise: int) -> Path:
    """Write a display matrix into the mp4 track header (tkhd), as phones do: show the video turned `clockwise` degrees."""
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    assert at > 0 and data[at + 4] == 0  # version 0 header: the matrix starts 44 bytes after the type
    a, b, c, d = TKHD_ROTATIONS[clockwise]
    matrix = [a, b, 0, c, d, 0, 0, 0, 1 << 30]
    data[at + 44:at + 80] = b"".join((v & 0xFFFFFFFF).to_bytes(4, "big") for v in matrix)
    path.write_bytes(bytes(data))
    return path


# file -> expected outcome: ("failed", words in the reason) or ("ok", n_frames, n_snippets, partial)
CASES = {
    "good.mp4": ("ok", 20, 2, False),
    "zero_bytes.mp4": ("failed", "empty file (0 bytes)"),
    "no_moov.mp4": ("failed", "cannot decode"),
    "cut_mid_stream.mp4": ("ok", None, 2, True),
    "text_file.mp4": ("failed", "cannot decode"),
    "audio_only.mp4": ("failed", "no video stream"),
    "frames_1.mp4": ("ok", 1, 1, False),
    "frames_15.mp4": ("ok", 15, 1, False),
    "frames_17.mp4": ("ok", 17, 2, False),
    "variable_rate.mp4": ("ok", 12, 1, False),
    "rotated_90.mp4": ("ok", 10, 1, False),
    "rotated_180.mp4": ("ok", 10, 1, False),
    "gray.mkv": ("ok", 10, 1, False),
    "yuv444.mp4": ("ok", 10, 1, False),
    "ten_bit.mkv": ("ok", 10, 1, False),
    "ünï cödé/clip with spaces.mp4": ("ok", 20, 2, False),
    "loops/link_a.mp4": ("failed", "symlink loop"),
    "pipe.mp4": ("failed", "not a regular file (a named pipe)"),
}
SIZES = {"rotated_90.mp4": (H, W)}  # width, height of the upright frames where not (W, H)
CAN_DENY_READ = os.geteuid() != 0  # root reads a chmod-000 file anyway


def make_bad_folder(root: Path) -> Path:
    write_lossless(root / "good.mp4", pattern_frames(20, W, H, seed=1))
    (root / "zero_bytes.mp4").write_bytes(b"")
    os.mkfifo(root / "pipe.mp4")  # opening it to read would block: it must be refused by type
    (root / "text_file.mp4").write_text("this is not a video\n")
    whole = write_lossless(root / "tmp_long.mp4", pattern_frames(40, W, H, seed=2)).read_bytes()
    assert whole.find(b"moov") > len(whole) // 2  # index at the end: cutting the file loses it
    (root / "no_moov.mp4").write_bytes(whole[: len(whole) * 2 // 3])
    (root / "tmp_long.mp4").unlink()
    front = write_encoded(root / "tmp_front.mp4", pattern_frames(40, W, H, seed=3), "libx264rgb", "rgb24", faststart=True).read_bytes()
    assert front.find(b"moov") < 100  # index first: the cut loses frames only
    (root / "cut_mid_stream.mp4").write_bytes(front[: len(front) * 2 // 3])
    (root / "tmp_front.mp4").unlink()
    write_audio_only(root / "audio_only.mp4")
    for n in (1, 15, 17):
        write_lossless(root / f"frames_{n}.mp4", pattern_frames(n, W, H, seed=n))
    write_encoded(root / "variable_rate.mp4", pattern_frames(12, W, H), "libx264", "yuv420p", vfr=True)
    set_rotation(write_encoded(root / "rotated_90.mp4", pattern_frames(10, W, H), "libx264", "yuv420p"), 90)
    set_rotation(write_encoded(root / "rotated_180.mp4", pattern_frames(10, W, H), "libx264", "yuv420p"), 180)
    write_encoded(root / "gray.mkv", pattern_frames(10, W, H), "ffv1", "gray")
    write_encoded(root / "yuv444.mp4", pattern_frames(10, W, H), "libx264", "yuv444p")
    write_encoded(root / "ten_bit.mkv", pattern_frames(10, W, H), "libx264", "yuv420p10le")
    write_lossless(root / "ünï cödé/clip with spaces.mp4", pattern_frames(20, W, H, seed=1))
    (root / "loops").mkdir()
    os.symlink("link_b.mp4", root / "loops/link_a.mp4")
    os.symlink("link_a.mp4", root / "loops/link_b.mp4")
    os.symlink("..", root / "loops/up")  # a folder loop: the walk must not follow it
    if CAN_DENY_READ:
        write_lossless(root / "unreadable.mp4", pattern_frames(5, W, H))
        (root / "unreadable.mp4").chmod(0)
    return root


@pytest.fixture(scope="module")
def batch(tmp_path_factory, r50_weights_path):
    tmp = tmp_path_factory.mktemp("bad_videos")
    videos = make_bad_folder(tmp / "videos")
    (tmp / "empty").mkdir()
    cache_dir = tmp / "cache"
    result = CliRunner().invoke(main, ["extract", str(videos), str(tmp / "empty"), "--cache", str(cache_dir),
                                       "--weights", str(r50_weights_path), "--crops", "1", "--profile", "direct",
                                       "--device", "cpu", "--batch-size", "8", "-q"])
    return result, FeatureCache(cache_dir), videos


def video_id(name: str) -> str:
    return name.rsplit(".", 1)[0]


def test_batch_exit_code_summary_and_one_line_errors(batch):
    result, cache, _ = batch
    expected_failed = [n for n, case in CASES.items() if case[0] == "failed"] + (["unreadable.mp4"] if CAN_DENY_READ else [])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["failed"] == len(expected_failed) + 1  # link_b.mp4 is the other end of the loop
    assert summary["extracted"] == sum(case[0] == "ok" for case in CASES.values())
    assert summary["partial"] == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"vad: error: {summary['failed']} of {summary['failed'] + summary['extracted']} video(s) failed; "
        f"see {cache.root / 'failures.jsonl'}")
    assert "no video files in this folder" in result.stderr  # the empty folder INPUT


@pytest.mark.parametrize("name", list(CASES))
def test_each_case(batch, name):
    _, cache, videos = batch
    case, vid = CASES[name], video_id(name)
    failures = {f["video_id"]: f for f in cache.failures()}
    if case[0] == "failed":
        assert vid in failures and vid not in cache.video_ids()
        error = failures[vid]["error"]
        assert "\n" not in error and case[1] in error and str(videos / name) in error
        assert not cache.feature_path(vid).exists() and not cache.meta_path(vid).exists()
        return
    assert vid not in failures
    _, n_frames, n_snippets, partial = case
    meta, features = cache.meta(vid), cache.load(vid)
    assert features.shape == (n_snippets, 1, 2048) and np.isfinite(features).all()
    assert (meta["n_snippets"], meta["partial"], meta["width"], meta["height"]) == (n_snippets, partial, *SIZES.get(name, (W, H)))
    if n_frames is not None:
        assert meta["n_frames"] == n_frames
    if partial:  # cut mid-stream: what decoded is kept, and why it stopped is recorded
        assert 16 < meta["n_frames"] < 40 and "truncated" in meta["decode_error"]


def test_same_pixels_give_same_features_wherever_the_file_lives(batch):
    _, cache, _ = batch
    assert np.array_equal(cache.load("good"), cache.load("ünï cödé/clip with spaces"))


def test_nothing_half_written(batch):
    _, cache, _ = batch
    files = [p for p in cache.features_dir.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.startswith(".") or p.suffix not in (".npy", ".json")]
    stems = {p.with_suffix("") for p in files}
    assert all(s.with_suffix(".npy").is_file() and s.with_suffix(".json").is_file() for s in stems)
    assert all(cache.entry_problem(v) is None for v in cache.video_ids())


def drop_dac_prefix() -> list[str]:
    """As root chmod 000 denies nothing; without the capabilities that bypass file permissions it
    does. A command prefix that drops them, [] when not root, None when it cannot be done here."""
    if CAN_DENY_READ:
        return []
    command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if shutil.which("setpriv") and subprocess.run([*command, "true"], capture_output=True).returncode == 0:
        return command
    return None


def test_unreadable_file_is_a_clear_failure_and_the_batch_goes_on(tmp_path, r50_weights_path):
    prefix = drop_dac_prefix()
    if prefix is None:
        pytest.skip("running as root and setpriv cannot drop CAP_DAC_OVERRIDE here: chmod 000 denies nothing")
    folder = tmp_path / "videos"
    write_lossless(folder / "good.mp4", pattern_frames(5, W, H))
    secret = write_lossless(folder / "secret.mp4", pattern_frames(5, W, H))
    secret.chmod(0)
    vad = Path(sys.executable).with_name("vad")
    done = subprocess.run([*prefix, str(vad), "extract", str(folder), "--cache", str(tmp_path / "cache"), "--weights",
                           str(r50_weights_path), "--crops", "1", "--profile", "direct", "--device", "cpu", "-q"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert f"vad: secret: {secret}: permission denied (not readable by this user)" in done.stderr
    cache = FeatureCache(tmp_path / "cache")
    assert cache.video_ids() == ["good"] and [f["video_id"] for f in cache.failures()] == ["secret"]


def write_4k(path: Path, n: int) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 3840, 2160, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "40"}
        frame = np.zeros((2160, 3840, 3), np.uint8)
        frame[..., 0] = (np.arange(3840) // 15).astype(np.uint8)
        for i in range(n):
            frame[..., 1] = 5 * i
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


PEAK_SCRIPT = """
import json, sys
from pathlib import Path
from vad.extract.snippets import SnippetPlan, VideoSummary, iter_snippets

def peak_mb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) // 1024

summary, peaks = VideoSummary(), []
for _ in iter_snippets(Path(sys.argv[1]), SnippetPlan(crops=1), summary):
    peaks.append(peak_mb())
print(json.dumps({"peaks": peaks, "frames": summary.n_frames, "size": [summary.width, summary.height]}))
"""


def test_4k_clip_streams_in_bounded_memory(tmp_path):
    """48 frames of 4K are 1.2 GB of RGB; frames stream, so the peak stops growing after the first snippet."""
    assert decord_chunk(3840, 2160) <= 2 and decord_chunk(320, 240) == 32
    video = write_4k(tmp_path / "uhd.mp4", 48)
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(video)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["frames"] == 48 and out["size"] == [3840, 2160] and len(out["peaks"]) == 3
    one_frame_mb = 3840 * 2160 * 3 / 2**20
    # Holding the frames would add 32 frames (760 MB) between the first and the last snippet.
    assert out["peaks"][-1] - out["peaks"][0] < 6 * one_frame_mb, out


def test_unreadable_file_simulated(tmp_path, monkeypatch):
    """The same check where the OS cannot deny root: the file reads as not accessible."""
    import vad.extract.decode as decode

    video = write_lossless(tmp_path / "secret.mp4", pattern_frames(5, W, H))
    monkeypatch.setattr(decode.os, "access", lambda path, mode: False)
    with pytest.raises(DecodeError, match=r"secret\.mp4: permission denied \(not readable by this user\)"):
        open_video(video)


# Rotation: phones store frames as the sensor reads them and a display matrix saying how to turn
# them; decoding applies it, as ffmpeg and OpenCV do, so features see the scene upright.


@pytest.mark.parametrize("clockwise,k", [(90, -1), (180, 2), (270, 1)])  # np.rot90's k: counter-clockwise quarter turns
def test_rotated_file_decodes_to_the_turned_frames(tmp_path, clockwise, k):
    """The same frames losslessly with and without the matrix: the rotated file gives np.rot90 of the plain one, exactly."""
    frames = pattern_frames(6, W, H, seed=4)
    plain, plain_stream = read_all_frames(write_lossless(tmp_path / "plain.mp4", frames), "auto")
    turned, stream = read_all_frames(set_rotation(write_lossless(tmp_path / "turned.mp4", frames), clockwise), "auto")
    assert np.array_equal(plain, frames) and (plain_stream.width, plain_stream.height) == (W, H)
    assert np.array_equal(turned, np.rot90(frames, k, axes=(1, 2)))
    assert (stream.width, stream.height) == (turned.shape[2], turned.shape[1]) == ((H, W) if clockwise != 180 else (W, H))
    assert turned.flags.c_contiguous and stream.n_decoded == 6 and not stream.partial


def ffmpeg_autorotated(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """What the ffmpeg command line decodes (autorotate is on by default) as [N,H,W,3] RGB of the given shape."""
    import imageio_ffmpeg

    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          capture_output=True, timeout=60, check=True)
    assert len(done.stdout) == int(np.prod(shape)), f"ffmpeg gave {len(done.stdout)} bytes, expected frames of {shape}"
    return np.frombuffer(done.stdout, np.uint8).reshape(shape)


@pytest.mark.parametrize("degrees", [0, 90, 180, -90])  # counter-clockwise, as FFmpeg's display matrix API counts
@pytest.mark.parametrize("hflip", [False, True])
def test_orientation_agrees_with_ffmpeg_autorotate(tmp_path, degrees, hflip):
    """All eight rotation/mirror matrices (PyAV's own writer) decode to ffmpeg's autorotated pixels exactly."""
    frames = pattern_frames(3, W, H, seed=5)
    path = tmp_path / "oriented.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "rgb24"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        stream.set_display_rotation(degrees, hflip=hflip)
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    decoded, _ = read_all_frames(path, "pyav")
    assert np.array_equal(decoded, ffmpeg_autorotated(path, decoded.shape))
    turned = np.rot90(frames, degrees // 90, axes=(1, 2))
    assert np.array_equal(decoded, turned[:, :, ::-1] if hflip else turned)  # set_display_rotation: the mirror follows the turn


def test_thumbnails_for_the_plot_are_upright(tmp_path):
    """`vad score --plot` re-decodes frames for thumbnails through the same decoder: portrait stays portrait."""
    from vad.pipeline.score import THUMBNAIL_HEIGHT, thumbnail_source

    path = set_rotation(write_lossless(tmp_path / "portrait.mp4", pattern_frames(4, W, H, seed=6)), 90)
    (thumb,) = thumbnail_source(path, "auto")([2])
    assert thumb.shape == (THUMBNAIL_HEIGHT, round(THUMBNAIL_HEIGHT * H / W), 3)


def test_decord_decodes_half_turns_like_pyav(tmp_path):
    path = set_rotation(write_lossless(tmp_path / "upside_down.mp4", pattern_frames(5, W, H, seed=7)), 180)
    by_decord, stream = read_all_frames(path, "decord")
    assert np.array_equal(by_decord, read_all_frames(path, "pyav")[0]) and (stream.width, stream.height) == (W, H)


def test_decord_refuses_quarter_turns_with_the_reason(tmp_path, monkeypatch):
    """decord 0.6 gives 4-channel garbage or a size error at 90/270 degrees: a named failure, never sideways frames."""
    import vad.extract.decode as decode

    path = set_rotation(write_lossless(tmp_path / "portrait.mp4", pattern_frames(5, W, H, seed=8)), 90)
    with pytest.raises(DecodeError) as error:
        open_video(path, "decord")
    assert str(error.value) == (f"{path}: cannot decode (decord: its display matrix says rotated 270 degrees counter-clockwise, "
                                "which decord 0.6 cannot apply; use --decoder pyav or auto)")
    # Where PyAV cannot read the matrix, decord's own symptom is caught instead.
    monkeypatch.setattr(decode, "_probe_orientation", lambda path: None)
    with pytest.raises(DecodeError, match=r"portrait\.mp4: cannot decode \(decord: decord returned 4-channel frames"):
        open_video(path, "decord")


def test_other_angles_keep_frames_as_stored_with_a_warning(tmp_path, caplog):
    """A 30-degree matrix would need resampling (ffmpeg's rotate filter); no phone writes one: frames stay as stored."""
    frames = pattern_frames(3, W, H, seed=9)
    path = tmp_path / "tilted.mp4"
    cos, sin = round(np.cos(np.pi / 6) * ONE), round(np.sin(np.pi / 6) * ONE)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "rgb24"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        stream.set_display_matrix([cos, -sin, 0, sin, cos, 0, 0, 0, 1 << 30])
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    with caplog.at_level(logging.WARNING, logger="vad"):
        decoded, _ = read_all_frames(path, "pyav")
    assert np.array_equal(decoded, frames)
    assert [r.getMessage() for r in caplog.records if "tilted.mp4" in r.getMessage()] == [
        f"{path}: display matrix [{cos}, {-sin}, 0, {sin}, {cos}, 0, 0, 0, 1073741824] is not a multiple of 90 degrees; frames kept as stored"]
