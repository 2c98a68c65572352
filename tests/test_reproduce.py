"""bench/reproduce.py end to end on a tiny fake ShanghaiTech release: the 2 real RTFM feature
files (normal videos, one per split) plus generated abnormal ones, RTFM-style lists with
foreign paths and a gt-sh.npy in the test list's order."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from paths import REFERENCE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import reproduce  # noqa: E402

REAL = REFERENCE / "features" / "shanghaitech-i3d-r50"


def _abnormal_like(source: Path, seed: int) -> tuple[np.ndarray, tuple[int, int]]:
    """A real normal video with a strong bump on a run of snippets: an easy synthetic anomaly."""
    features = np.load(source)
    rng = np.random.default_rng(seed)
    t = features.shape[0]
    start = int(rng.integers(2, t // 2))
    end = start + t // 4
    direction = rng.random(features.shape[-1]).astype(np.float32)
    features = features.copy()
    features[start:end] += 2.0 * direction
    return features, (start, end)


@pytest.fixture
def release(tmp_path: Path) -> dict:
    if not REAL.is_dir():
        pytest.skip("tests/data/features/shanghaitech-i3d-r50 not present")
    train_dir, test_dir = tmp_path / "SH_Train_ten_crop_i3d", tmp_path / "SH_Test_ten_crop_i3d"
    train_dir.mkdir(), test_dir.mkdir()
    train_normal = (REAL / "train_files.txt").read_text().split()
    test_normal = (REAL / "test_files.txt").read_text().split()
    for name in train_normal:
        shutil.copy(REAL / name, train_dir / name)
    for name in test_normal:
        shutil.copy(REAL / name, test_dir / name)
    train_abnormal, test_abnormal, gt = ["01_0014_i3d.npy", "01_0016_i3d.npy"], ["01_0015_i3d.npy", "01_0025_i3d.npy"], []
    for i, name in enumerate(train_abnormal):
        np.save(train_dir / name, _abnormal_like(REAL / train_normal[i % len(train_normal)], i)[0])
    for i, name in enumerate(test_abnormal):
        features, (start, end) = _abnormal_like(REAL / test_normal[i % len(test_normal)], 10 + i)
        np.save(test_dir / name, features)
        frames = np.zeros(16 * features.shape[0])
        frames[16 * start:16 * end] = 1
        gt.append(frames)
    for name in test_normal:
        gt.append(np.zeros(16 * np.load(test_dir / name, mmap_mode="r").shape[0]))
    np.save(tmp_path / "gt-sh.npy", np.concatenate(gt))
    # RTFM's lists name the authors' disks; abnormal videos come first in both.
    (tmp_path / "train.list").write_text("".join(f"/home/yu/yu_ssd/SH_Train_ten_crop_i3d/{n}\n" for n in train_abnormal + train_normal))
    (tmp_path / "test.list").write_text("".join(f"/home/yu/yu_ssd/SH_Test_ten_crop_i3d/{n}\n" for n in test_abnormal + test_normal))
    return {"root": tmp_path, "train": train_dir, "test": test_dir, "n_test_frames": sum(len(g) for g in gt)}


def test_reproduce_sh_end_to_end(release, capsys):
    root = release["root"]
    started = time.perf_counter()
    reproduce.main(["sh", "--features", str(release["train"]), "--test-features", str(release["test"]),
                    "--train-list", str(root / "train.list"), "--test-list", str(root / "test.list"), "--gt", str(root / "gt-sh.npy"),
                    "--work", str(root / "work"), "--sh-train-abnormal", "2", "--epochs", "1", "--min-steps", "0", "--iterations", "3",
                    "--batch-videos", "2", "--device", "cpu", "--json", str(root / "rows.json")])
    out = capsys.readouterr().out
    work = root / "work" / "sh"
    assert (work / "train.csv").read_text().splitlines() == [
        "video,label", "01_0014,1", "01_0016,1", "01_002,0"]
    assert (work / "test.csv").read_text().splitlines()[1:3] == ["01_0015,1", "01_0025,1"]
    assert sum(1 for line in (work / "gt.csv").read_text().splitlines()[1:]) == 2
    assert (work / "run-arms" / "model.pt").is_file() and (work / "run-arms" / "iter_3.pt").is_file()
    rows = json.loads((root / "rows.json").read_text())
    assert rows[0]["variant"] == "arms" and rows[0]["paper"] == 97.48
    assert rows[0]["raw"]["n_frames"] == release["n_test_frames"] and rows[0]["raw"]["n_videos"] == 3
    assert 0 <= rows[0]["corrected"]["auc"] <= 1
    assert "| ARMS | 97.48 |" in out and f"{100 * rows[0]['corrected']['auc']:.2f}" in out
    assert time.perf_counter() - started < 120


def test_reproduce_refuses_missing_inputs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        reproduce.main(["ucf", "--features", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    assert "--features" in capsys.readouterr().err


def test_every_dataset_has_public_lists_and_paper_numbers():
    for name, spec in reproduce.DATASETS.items():
        assert set(spec.paper) == set(reproduce.VARIANTS)
        for key in ("train_list", "test_list", "gt"):
            assert (reproduce.ANNOTATIONS / getattr(spec, key)).is_file(), (name, key)
    assert reproduce.DATASETS["ucf"].is_abnormal(0, "Normal_Videos_001_x264", 63) is False
    assert reproduce.DATASETS["xd"].is_abnormal(0, "A.Beautiful.Mind.2001__#00-25-20_00-29-20_label_A", 63) is False
