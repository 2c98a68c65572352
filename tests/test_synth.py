"""The synthetic surveillance generator: determinism, ground truth, files and codecs."""
from __future__ import annotations

import csv
import math

import av
import numpy as np
import pytest

from vad import synth
from vad.synth.actors import _walker

TINY = synth.SceneConfig(scene_id=7, width=64, height=48)


def tiny(anomaly: str = "none", seed: int = 1, scene: synth.SceneConfig = TINY, n: int = 32) -> synth.ClipSpec:
    return synth.ClipSpec(scene=scene, seed=seed, n_frames=n, anomaly=anomaly)


def test_same_seed_renders_identical_frames_even_after_the_scene_cache_is_cleared():
    first = synth.render_clip(tiny("fight"))
    synth.build_scene.cache_clear()
    assert np.array_equal(first, synth.render_clip(tiny("fight")))


def test_different_clip_seeds_and_scene_ids_render_different_frames():
    base = synth.render_clip(tiny(seed=1))
    assert not np.array_equal(base, synth.render_clip(tiny(seed=2)))
    other_scene = synth.SceneConfig(scene_id=8, width=64, height=48)
    background = np.asarray(synth.build_scene(TINY).background, dtype=np.int16)
    other = np.asarray(synth.build_scene(other_scene).background, dtype=np.int16)
    assert np.abs(background - other).mean() > 10  # a different place, not just different noise


@pytest.mark.parametrize("anomaly", ["none", *synth.ANOMALIES])
def test_every_kind_renders_frames_and_a_partial_ground_truth(anomaly):
    plan = synth.plan_clip(tiny(anomaly))
    frames = synth.render_plan(plan)
    assert frames.shape == (32, 48, 64, 3) and frames.dtype == np.uint8
    assert frames.std() > 5  # a textured scene, not a flat fill
    if anomaly == "none":
        assert plan.gt == []
    else:
        [(start, end)] = plan.gt
        assert 0 < start < end <= 32  # some normal frames first: the event never covers the whole clip


@pytest.mark.parametrize("anomaly", list(synth.ANOMALIES))
@pytest.mark.parametrize("size,n", [((64, 48), 32), ((320, 240), 160)])
def test_event_actors_are_on_screen_throughout_their_ground_truth(anomaly, size, n):
    spec = tiny(anomaly, seed=3, scene=synth.SceneConfig(scene_id=11, width=size[0], height=size[1]), n=n)
    scene = synth.build_scene(spec.scene)
    event = synth.ANOMALIES[anomaly](np.random.default_rng(5), scene, spec)
    assert 0 < event.start < event.end <= n
    for f in range(event.start, event.end):
        sprites = [track[f] for track in event.tracks if track[f] is not None]
        assert sprites, f"frame {f}: no event actor"
    on_screen = [any(s is not None and scene.visible(s.x, s.y, s.h, 1.3) for s in (t[f] for t in event.tracks))
                 for f in range(event.start, event.end)]
    assert np.mean(on_screen) > 0.5


def _speed(scene: synth.Scene, poses: list, fps: int) -> float:
    """Median ground speed of a track in body heights per second."""
    steps = [math.hypot(b.x - a.x, b.y - a.y) / a.h * fps for a, b in zip(poses, poses[1:]) if a is not None and b is not None]
    return float(np.median(steps))


def test_runners_and_vehicles_move_several_times_faster_than_walkers():
    spec = synth.ClipSpec(scene=synth.SceneConfig(scene_id=3), seed=0, n_frames=120, anomaly="running")
    scene = synth.build_scene(spec.scene)
    rng = np.random.default_rng(0)
    walk = np.median([_speed(scene, _walker(rng, scene, spec), 25) for _ in range(5)])
    run = _speed(scene, synth.ANOMALIES["running"](rng, scene, spec).tracks[0], 25)
    car = _speed(scene, synth.ANOMALIES["vehicle"](rng, scene, spec).tracks[0], 25)
    assert 0.5 < walk < 1.1
    assert run > 3 * walk and car > 4 * walk


def test_a_fallen_person_ends_up_lying_and_gets_up_again():
    spec = synth.ClipSpec(scene=synth.SceneConfig(scene_id=3), seed=0, n_frames=160, anomaly="fall")
    event = synth.ANOMALIES["fall"](np.random.default_rng(2), synth.build_scene(spec.scene), spec)
    tilts = [p.tilt for p in event.tracks[0]]
    assert max(tilts[event.start:event.end]) > 1.3  # about horizontal
    assert tilts[event.start - 1] == 0 and tilts[event.end] == 0


def test_bad_specs_are_refused_with_a_message():
    with pytest.raises(ValueError, match="unknown anomaly 'explosion'"):
        synth.ClipSpec(anomaly="explosion")
    with pytest.raises(ValueError, match="even"):
        synth.SceneConfig(width=65)


def test_lossless_write_decodes_pixel_exact_with_pyav(tmp_path):
    frames = synth.render_clip(tiny("throw"))
    path = synth.write_clip(tmp_path / "clip.mp4", frames, fps=25, codec="libx264rgb")
    with av.open(str(path)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert np.array_equal(decoded, frames)
    assert not list(tmp_path.glob("*.tmp"))


def test_h264_write_is_yuv420p_and_close_to_the_source(tmp_path):
    frames = synth.render_clip(tiny("running"))
    path = synth.write_clip(tmp_path / "clip.mp4", frames, fps=25)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert float(stream.average_rate) == 25
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames).mean() < 8  # crf 18 on a noisy 64x48 clip


def test_h264_write_gives_the_same_bytes_every_time(tmp_path):
    """One of the demo's clips (normal_004 of seed 0): with x264's mb-tree on, four encodes of these
    frames in one process gave up to four different videos, and the demo different features."""
    frames = synth.render_clip(synth.ClipSpec(scene=synth.SceneConfig(scene_id=2968811710, width=320, height=240), seed=53917133,
                                              n_frames=64, anomaly="none"))
    written = {synth.write_clip(tmp_path / f"clip{k}.mp4", frames, fps=25).read_bytes() for k in range(4)}
    assert len(written) == 1


def test_write_clip_refuses_odd_sizes_and_unknown_codecs(tmp_path):
    with pytest.raises(ValueError, match="even width and height"):
        synth.write_clip(tmp_path / "a.mp4", np.zeros((2, 9, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="codec must be one of"):
        synth.write_clip(tmp_path / "a.mp4", np.zeros((2, 8, 8, 3), np.uint8), codec="mpeg4")


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_make_dataset_writes_videos_labels_and_gt(tmp_path):
    info = synth.make_dataset(tmp_path, n_normal=2, n_abnormal=5, seed=4, size=(64, 48), n_frames=(32, 40), n_scenes=2)
    ids = [c.video for c in info.clips]
    assert ids == ["normal/normal_000", "normal/normal_001", "abnormal/running_000", "abnormal/vehicle_001",
                   "abnormal/fight_002", "abnormal/fall_003", "abnormal/throw_004"]
    for clip in info.clips:
        assert clip.path == tmp_path / "videos" / f"{clip.video}.mp4" and clip.path.is_file()
        assert 32 <= clip.n_frames <= 40
    assert len({c.scene_id for c in info.clips}) == 2

    labels = _rows(info.labels_csv)
    assert labels[0] == ["video", "label"]
    assert labels[1:] == [[c.video, str(c.label)] for c in info.clips]
    assert [row[1] for row in labels[1:]] == ["0", "0", "1", "1", "1", "1", "1"]

    gt = _rows(info.gt_csv)
    assert gt[0] == ["video", "start_frame", "end_frame"]
    by_id = {c.video: c for c in info.clips}
    assert sorted(row[0] for row in gt[1:]) == sorted(i for i in ids if i.startswith("abnormal/"))
    for video, start, end in gt[1:]:
        assert 0 < int(start) < int(end) <= by_id[video].n_frames
    assert _rows(info.clips_csv)[0] == ["video", "label", "kind", "scene_id", "seed", "n_frames", "fps"]


def test_dataset_videos_decode_with_decord_to_their_frame_count(tmp_path):
    decord = pytest.importorskip("decord")
    info = synth.make_dataset(tmp_path, n_normal=1, n_abnormal=1, seed=0, size=(64, 48), n_frames=36, n_scenes=1)
    for clip in info.clips:
        reader = decord.VideoReader(str(clip.path))
        assert len(reader) == clip.n_frames == 36
        assert reader[0].shape == (48, 64, 3)
        assert reader.get_avg_fps() == pytest.approx(25)


def test_dataset_seed_changes_the_scenes(tmp_path):
    a = synth.make_dataset(tmp_path / "a", 1, 0, seed=0, size=(64, 48), n_frames=16, n_scenes=1)
    b = synth.make_dataset(tmp_path / "b", 1, 0, seed=1, size=(64, 48), n_frames=16, n_scenes=1)
    assert a.clips[0].scene_id != b.clips[0].scene_id
    assert a.clips[0].path.read_bytes() != b.clips[0].path.read_bytes()
