"""Importers and tables on the real public files in tests/data (tests/data/README.md says where each comes from)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner

from vad.extract.cache import FeatureCache
from vad.pipeline.cli import main
from vad.pipeline.importers import import_mask_folder, import_ucf_gt, import_xd_gt, read_frame_counts, video_id_of
from vad.tables import TableError, read_gt, read_labels

from paths import REFERENCE

SH_FEATURES = REFERENCE / "features" / "shanghaitech-i3d-r50"
C3D = REFERENCE / "features" / "ucf-crime-c3d"
SH = REFERENCE / "annotations" / "shanghaitech"
UCF = REFERENCE / "annotations" / "ucf-crime"
XD = REFERENCE / "annotations" / "xd-violence"


def vad(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_import_real_shanghaitech_features(tmp_path):
    files = sorted(SH_FEATURES.glob("*.npy"))
    result = vad("cache", "import", *files, "--cache", tmp_path / "c", "--strip-suffix", "_i3d", "--backbone", "i3d-r50", "-q")
    assert result.exit_code == 0, result.output
    cache = FeatureCache(tmp_path / "c")
    assert cache.video_ids() == ["01_002", "01_006"]  # the two kept files (tests/data/README.md)
    assert cache.config["feature_dim"] == 2048 and cache.config["crops"] == 10 and cache.config["backbone"] == "i3d-r50"
    for path in files:
        features = cache.load(path.stem[:-4])
        assert features.shape[1:] == (10, 2048) and 31 <= features.shape[0] <= 49
        assert np.array_equal(features, np.load(path))


def test_import_rtfm_list_with_foreign_paths(tmp_path):
    listing = tmp_path / "sh.list"
    names = [name for split in ("train_files.txt", "test_files.txt") for name in (SH_FEATURES / split).read_text().split()]
    listing.write_text("".join(f"/home/yu/yu_ssd/SH_Test_ten_crop_i3d/{name}\n" for name in names))
    result = vad("cache", "import", listing, "--root", SH_FEATURES, "--cache", tmp_path / "c", "--strip-suffix", "_i3d", "-q")
    assert result.exit_code == 0, result.output
    assert FeatureCache(tmp_path / "c").video_ids() == ["01_002", "01_006"]
    missing = vad("cache", "import", listing, "--cache", tmp_path / "d", "-q")
    assert missing.exit_code == 2 and "sh.list:1:" in missing.stderr and "not found" in missing.stderr


def test_import_c3d_samples(tmp_path):
    result = vad("cache", "import", *sorted(C3D.glob("*.txt")), "--cache", tmp_path / "c", "-q")
    assert result.exit_code == 0, result.output
    cache = FeatureCache(tmp_path / "c")
    assert cache.video_ids() == ["Explosion008_x264", "Normal_Videos_006_x264"]
    features = cache.load("Explosion008_x264")
    assert features.shape == (32, 1, 4096) and cache.feature_dim == 4096
    assert np.allclose(features[:, 0], np.loadtxt(C3D / "Explosion008_x264.txt"))
    assert cache.meta("Explosion008_x264")["segments"] == 32


def test_import_plain_arrays_crop_groups_and_clashes(tmp_path):
    for crop in range(3):
        np.save(tmp_path / f"clip__{crop}.npy", np.full((5, 4), crop, np.float32))
    result = vad("cache", "import", *sorted(tmp_path.glob("clip__*.npy")), "--group-crops", "--cache", tmp_path / "c", "-q")
    assert result.exit_code == 0, result.output
    features = FeatureCache(tmp_path / "c").load("clip")
    assert features.shape == (5, 3, 4) and features[0, :, 0].tolist() == [0, 1, 2]
    np.save(tmp_path / "plain.npy", np.ones((7, 4), np.float32))
    np.save(tmp_path / "wide.npy", np.ones((7, 3, 8), np.float32))
    clash = vad("cache", "import", tmp_path / "plain.npy", tmp_path / "wide.npy", "--cache", tmp_path / "d", "-q")
    assert clash.exit_code == 1 and "failed" in clash.stderr
    assert FeatureCache(tmp_path / "d").load("plain").shape == (7, 1, 4)
    assert "does not fit" in FeatureCache(tmp_path / "d").failures()[0]["error"]


def test_rtfm_gt_import_reproduces_test_frame_masks(tmp_path):
    """gt-sh.npy + its list -> GT CSV; each test video's frame GT equals its test_frame_mask, and
    padding it to 16*ceil(n/16) (RTFM repeats the last frame) gives back gt-sh.npy's slice."""
    masks = {p.stem: np.load(p) for p in sorted((SH / "test_frame_mask").glob("*.npy"))}
    counts = tmp_path / "counts.csv"
    counts.write_text("video,n_frames\n" + "".join(f"{v},{len(m)}\n" for v, m in masks.items()))
    out = tmp_path / "gt.csv"
    result = vad("gt", "import", SH / "gt-sh.npy", "--format", "rtfm", "--list", SH / "shanghai-i3d-test-10crop.list",
                 "--frame-counts", counts, "--strip-suffix", "_i3d", "--out", out)
    assert result.exit_code == 0, result.output
    gt = read_gt(out)
    gt_array = np.load(SH / "gt-sh.npy")
    test = [video_id_of(line, ["_i3d"]) for line in (SH / "shanghai-i3d-test-10crop.list").read_text().split()]
    position, checked = 0, 0
    for video in test:
        if video not in masks:
            break
        mask, n = masks[video], len(masks[video])
        labels = np.zeros(n, np.uint8)
        for start, end in gt.get(video, []):
            labels[start:end] = 1
        assert np.array_equal(labels, mask), video
        padded = np.pad(labels, (0, 16 * math.ceil(n / 16) - n), mode="edge")
        assert np.array_equal(padded, gt_array[position:position + len(padded)]), video
        position += len(padded)
        checked += 1
    assert checked == 44 and not gt_array[position:].any()
    assert set(gt) == {v for v in test if v in masks}  # rows only for abnormal videos
    # The other 63 masks are training videos in RTFM's split (not in gt-sh.npy): the mask import covers them.
    mask_gt, mask_counts = import_mask_folder(SH / "test_frame_mask")
    assert len(mask_gt) == 107 == len(masks)
    for video, mask in masks.items():
        labels = np.zeros(mask_counts[video], np.uint8)
        for start, end in mask_gt[video]:
            labels[start:end] = 1
        assert np.array_equal(labels, mask), video


def test_ucf_annotation_import_agrees_with_v2_frame_counts():
    counts = read_frame_counts([UCF / "test_anomalyv2.txt", UCF / "test_normalv2.txt"])
    gt = import_ucf_gt(UCF / "Temporal_Anomaly_Annotation.txt", frame_counts=counts)
    assert len(gt) == 290 and set(gt) == set(counts)
    assert sum(1 for v in gt.values() if v) == 140
    for line in (UCF / "test_anomalyv2.txt").read_text().splitlines():
        name, n, intervals = line.split("|")
        values = [int(x) for x in intervals.strip("[] ").split(",")]
        video = video_id_of(name)
        assert all(0 <= s < e <= int(n) for s, e in gt[video]), video
        # v2 repeats the annotation; only the two ends one frame past the video are clipped
        expected = [(s, min(e, int(n))) for s, e in zip(values[::2], values[1::2])]
        assert gt[video] == expected, video
    assert gt["Explosion033_x264"] == [(970, 1350), (1550, 3155)]
    assert all(not gt[video_id_of(line.split()[0])] for line in (UCF / "test_normalv2.txt").read_text().splitlines())


def test_ucf_gt_cli_and_xd_import(tmp_path):
    result = vad("gt", "import", UCF / "Temporal_Anomaly_Annotation.txt", "--format", "ucf", "--out", tmp_path / "ucf.csv", "-q")
    assert result.exit_code == 0, result.output
    pairs = [line.split()[2:] for line in (UCF / "Temporal_Anomaly_Annotation.txt").read_text().splitlines() if line.strip()]
    expected = sum(1 for p in pairs for s in (p[0], p[2]) if s != "-1")
    assert sum(len(v) for v in read_gt(tmp_path / "ucf.csv").values()) == expected == 156
    xd = import_xd_gt(XD / "annotations.txt")
    assert len(xd) == len([line for line in (XD / "annotations.txt").read_text().splitlines() if line.strip()])
    assert xd["v=u5SF4SlqNDQ__#00-00-00_00-01-00_label_G-0-0"] == [(624, 912), (950, 1441)]


@pytest.mark.parametrize("text, message", [
    ("vid,lab\na,1\n", ":1: expected the header"),
    ("video,label\na,1\na,0\n", ":3: duplicate video 'a'"),
    ("video,label\na,maybe\n", ":2: label 'maybe'"),
    ("video,label\nzzz,1\n", ":2: unknown video 'zzz'"),
    ("video,label\na,1,2\n", ":2: expected 2 fields"),
])
def test_labels_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(TableError, match=message.replace("(", r"\(")) as info:
        read_labels(path, known_ids=["a", "b"])
    assert str(path) in str(info.value)


def test_labels_accept_words():
    import pathlib
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "l.csv"
        path.write_text("video,label\na,normal\nb,Abnormal\nc,1\n")
        assert read_labels(path) == {"a": 0, "b": 1, "c": 1}


@pytest.mark.parametrize("text, message", [
    ("video,start,end\n", ":1: expected the header"),
    ("video,start_frame,end_frame\na,10,5\n", ":2: interval \\[10, 5\\) of 'a' is empty or reversed"),
    ("video,start_frame,end_frame\na,0,200\n", ":2: interval \\[0, 200\\) of 'a' ends after its 100 frames"),
    ("video,start_frame,end_frame\nq,0,5\n", ":2: unknown video 'q'"),
    ("video,start_frame,end_frame\na,0,5\na,0,5\n", ":3: duplicate interval"),
    ("video,start_frame,end_frame\na,x,5\n", ":2: frames must be integers"),
])
def test_gt_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "gt.csv"
    path.write_text(text)
    with pytest.raises(TableError, match=message):
        read_gt(path, known_ids=["a"], n_frames={"a": 100})


def test_gt_cli_bad_input_exit_2(tmp_path):
    result = vad("gt", "import", SH / "gt-sh.npy", "--format", "rtfm", "--frame-counts", tmp_path / "none.csv", "--list", SH / "shanghai-i3d-test-10crop.list")
    assert result.exit_code == 2 and result.stderr.startswith("vad: error:") and "none.csv" in result.stderr
    no_counts = vad("gt", "import", SH / "gt-sh.npy", "--format", "rtfm", "--list", SH / "shanghai-i3d-test-10crop.list")
    assert no_counts.exit_code == 2 and "frame counts" in no_counts.stderr


def test_cache_export_writes_pooled_view(tmp_path):
    files = sorted(SH_FEATURES.glob("*.npy"))[:2]
    assert vad("cache", "import", *files, "--cache", tmp_path / "c", "-q").exit_code == 0
    result = vad("cache", "export", "--cache", tmp_path / "c", "--out", tmp_path / "x", "--segments", "32", "-q")
    assert result.exit_code == 0, result.output
    from vad.models.pooling import pool_segments
    exported = np.load(tmp_path / "x" / f"{files[0].stem}.npy")
    assert exported.shape == (32, 10, 2048)
    assert np.array_equal(exported, pool_segments(np.load(files[0])))
