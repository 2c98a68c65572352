"""Decoding: decord and PyAV agree pixel for pixel, counts are what decodes, bad files fail clearly."""
from __future__ import annotations

import itertools
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from vad.extract.decode import DecodeError, Orientation, decode_ahead, display_orientation, open_video, read_all_frames

from paths import GOLDEN_R50, VIDEOS
from videos import clip40_frames, pattern_frames, write_codec, write_lossless


@pytest.mark.parametrize("decoder", ["decord", "pyav", "auto"])
def test_lossless_clip_decodes_exactly(tmp_path, decoder):
    frames = pattern_frames(21, seed=3)
    path = write_lossless(tmp_path / "clip.mp4", frames, fps=25)
    decoded, stream = read_all_frames(path, decoder)
    assert decoded.shape == frames.shape
    assert np.array_equal(decoded, frames)
    assert stream.fps == 25.0
    assert stream.n_decoded == 21 and not stream.partial


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_golden_clip40_is_bit_exact(decoder):
    decoded, _ = read_all_frames(GOLDEN_R50 / "clip40.mp4", decoder)
    assert np.array_equal(decoded, clip40_frames())


@pytest.mark.parametrize("name,frames,fps", [("bikes", 250, 25.0), ("carphone_pristine", 120, 29.97), ("carphone_distorted", 120, 29.97)])
def test_real_clips_decoders_agree(name, frames, fps):
    a, sa = read_all_frames(VIDEOS / f"{name}.mp4", "decord")
    b, sb = read_all_frames(VIDEOS / f"{name}.mp4", "pyav")
    assert a.shape[0] == b.shape[0] == frames
    assert np.array_equal(a, b)
    assert sa.fps == pytest.approx(fps, abs=1e-3) and sb.fps == pytest.approx(fps, abs=1e-3)


def test_missing_empty_and_text_files_name_the_file(tmp_path):
    with pytest.raises(DecodeError, match="no such file"):
        open_video(tmp_path / "nope.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(DecodeError, match=r"empty\.mp4: empty file"):
        open_video(empty)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 10)
    with pytest.raises(DecodeError, match=r"notes\.mp4: cannot decode"):
        open_video(text)


def test_truncated_file_keeps_what_decoded(tmp_path):
    frames = pattern_frames(60, seed=1)
    path = write_lossless(tmp_path / "full.mp4", frames)
    data = path.read_bytes()
    # Cut the mdat (frames) in the middle but keep the header: the decoder gets part of the stream.
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    try:
        decoded, stream = read_all_frames(cut, "pyav")
    except DecodeError as exc:  # moov at the end: nothing can be decoded; the message names the file
        assert "cut.mp4" in str(exc)
        return
    assert 0 < len(decoded) <= 60
    assert np.array_equal(decoded, frames[: len(decoded)])


ONE = 1 << 16


@pytest.mark.parametrize("abcd,expected", [
    ((ONE, 0, 0, ONE), Orientation(0, False)),
    ((0, ONE, -ONE, 0), Orientation(3, False)),  # the phone portrait matrix: shown 90 degrees clockwise
    ((-ONE, 0, 0, -ONE), Orientation(2, False)),
    ((0, -ONE, ONE, 0), Orientation(1, False)),
    ((-ONE, 0, 0, ONE), Orientation(0, True)),  # mirrored left-right
    ((ONE, 0, 0, -ONE), Orientation(2, True)),  # mirrored top-bottom
    ((0, ONE, ONE, 0), Orientation(1, True)),
    ((0, 3 * ONE, -3 * ONE, 0), Orientation(3, False)),  # a scale does not change the turn
])
def test_display_orientation(abcd, expected):
    a, b, c, d = abcd
    assert display_orientation([a, b, 0, c, d, 0, 0, 0, 1 << 30]) == expected


def test_display_orientation_refuses_other_angles_and_degenerate_matrices():
    tilted = [round(np.cos(np.pi / 6) * ONE), -ONE // 2, 0, ONE // 2, round(np.cos(np.pi / 6) * ONE), 0, 0, 0, 1 << 30]
    assert display_orientation(tilted) is None
    assert display_orientation([0, 0, 0, 0, 0, 0, 0, 0, 1 << 30]) is None
    nearly_90 = [round(np.cos(np.pi / 2 + 0.01) * ONE), round(np.sin(np.pi / 2 + 0.01) * ONE), 0,
                 -round(np.sin(np.pi / 2 + 0.01) * ONE), round(np.cos(np.pi / 2 + 0.01) * ONE), 0, 0, 0, 1 << 30]
    assert display_orientation(nearly_90) == Orientation(3, False)  # within a degree counts, as in ffmpeg


def test_orientation_apply_turns_and_mirrors():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert Orientation().apply(rgb) is rgb  # upright: no copy
    assert np.array_equal(Orientation(1).apply(rgb), np.rot90(rgb))
    out = Orientation(3, True).apply(rgb)
    assert np.array_equal(out, np.rot90(rgb[:, ::-1], 3)) and out.flags.c_contiguous
    assert Orientation(3, True).describe() == "mirrored left-right, then rotated 270 degrees counter-clockwise"
    assert Orientation().describe() == "upright"


class _Frame:
    def __init__(self, value: int):
        self.value = value

    def to_ndarray(self, format: str, threads: int) -> np.ndarray:
        return np.full((2, 2, 3), self.value, dtype=np.uint8)


class _Container:
    def close(self) -> None:
        pass


@pytest.mark.parametrize("listed, partial", [(5, False), (6, False), (7, True)])
def test_a_container_listing_one_frame_too_many_is_complete(listed, partial):
    """Broken timestamps make some containers list one frame more than they hold (ffmpeg decodes the
    same count): that is a complete file; two or more missing is a truncated one."""
    from vad.extract.decode import FrameStream

    stream = FrameStream(Path("x.mp4"), "pyav", 25.0, 2, 2, listed, _Container(), _frames=iter([_Frame(i) for i in range(5)]))
    assert len(list(stream)) == 5
    assert stream.partial is partial
    assert (stream.error is not None) is partial and (not partial or "truncated file?" in stream.error)


def _single_threaded(path: Path) -> np.ndarray:
    """The reference: PyAV with every decoder thread off, frames converted one by one."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])


@pytest.mark.parametrize("codec, pix_fmt, options", [
    ("msmpeg4", "yuv420p", {}),  # DivX 3, UCF-Crime's codec: no decoder threads, vad's decode-ahead thread only
    ("mjpeg", "yuvj420p", {}),
    ("mpeg4", "yuv420p", {"bf": "2"}),  # frame threads and the decode-ahead thread, with B-frames reordered
])
def test_threaded_decoding_keeps_every_frame_in_order(tmp_path, codec, pix_fmt, options):
    frames = pattern_frames(40, seed=5)
    path = write_codec(tmp_path / f"{codec}.avi", frames, codec, pix_fmt, **options)
    decoded, stream = read_all_frames(path, "pyav")
    assert stream.decode_ahead > 0
    assert stream.n_decoded == 40 and not stream.partial
    assert np.array_equal(decoded, _single_threaded(path))
    # and in display order: each decoded frame is nearest to its own source frame
    error = np.abs(decoded[:, None].astype(np.int16) - frames[None]).mean(axis=(2, 3, 4))
    assert error.argmin(axis=1).tolist() == list(range(40))


def test_decode_ahead_keeps_order_and_raises_the_error_after_the_items_before_it():
    def source():
        yield from range(3)
        raise ValueError("corrupt packet")

    got = []
    with pytest.raises(ValueError, match="corrupt packet"):
        for item in decode_ahead(source(), depth=2):
            got.append(item)
    assert got == [0, 1, 2]
    assert list(decode_ahead(iter(range(5)), depth=4)) == [0, 1, 2, 3, 4]  # a source that ends: every item, then the end


def test_decode_ahead_closed_early_stops_its_thread():
    frames = decode_ahead(itertools.count(), depth=2)  # a source that never ends
    assert list(itertools.islice(frames, 5)) == [0, 1, 2, 3, 4]
    frames.close()
    assert not any(thread.name == "vad-decode" for thread in threading.enumerate())
