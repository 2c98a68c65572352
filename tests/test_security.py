"""Untrusted files never run code: weights, model files, checkpoints, cached features.

Every payload here would create a file when unpickled; each test asserts the file never appears.
"""
from __future__ import annotations

import ast
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vad.extract.cache import CacheError, FeatureCache
from vad.models.io import ModelFileError, read_model_file
from vad.pipeline.cli import main
from vad.weights import WeightsError, load_state_dict_file
from vad.weights.safe_pickle import RefusedGlobal, restricted_load

from videos import pattern_frames, write_lossless

PACKAGE = Path(__file__).resolve().parents[1]


class Payload:
    """Unpickling this calls open(marker, "w"): proof of code execution if the marker appears."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture()
def marker(tmp_path):
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a pickled callable ran"


def evil_files(tmp_path: Path, marker: Path) -> dict[str, Path]:
    payload = {"conv.weight": torch.zeros(2), "evil": Payload(marker)}
    files = {"zip.pt": tmp_path / "evil_zip.pt", "legacy.pth": tmp_path / "evil_legacy.pth", "raw.pkl": tmp_path / "evil_raw.pth"}
    torch.save(payload, files["zip.pt"])
    torch.save(payload, files["legacy.pth"], _use_new_zipfile_serialization=False)
    files["raw.pkl"].write_bytes(pickle.dumps(payload, protocol=2))
    model = {"format": 1, "kind": "vad-arms-detector", "detector": {}, "state_dict": {}, "evil": Payload(marker)}
    files["model.pt"] = tmp_path / "evil_model.pt"
    torch.save(model, files["model.pt"])
    return files


def test_weights_loader_refuses_pickled_callables(tmp_path, marker):
    for _name, path in evil_files(tmp_path, marker).items():
        with pytest.raises(WeightsError, match="not a loadable weights file"):
            load_state_dict_file(path)


def test_model_loader_refuses_pickled_callables(tmp_path, marker):
    for _name, path in evil_files(tmp_path, marker).items():
        with pytest.raises(ModelFileError, match="not a loadable model file"):
            read_model_file(path)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_restricted_unpickler_refuses_callables(marker, protocol):
    data = pickle.dumps({"w": np.zeros(3), "evil": Payload(marker)}, protocol=protocol)
    with pytest.raises(RefusedGlobal, match=r"refused to load global (io|_io|builtins)\.open"):
        restricted_load(io.BytesIO(data))


def test_cli_refuses_evil_weights_and_models(tmp_path, marker):
    files = evil_files(tmp_path, marker)
    write_lossless(tmp_path / "clip.mp4", pattern_frames(4, 64, 48))
    for path in (files["zip.pt"], files["legacy.pth"]):
        result = CliRunner().invoke(main, ["extract", str(tmp_path / "clip.mp4"), "--cache", str(tmp_path / "c"), "--weights", str(path),
                                           "--allow-unverified-weights", "--crops", "1", "--device", "cpu", "-q"])
        assert result.exit_code == 2 and "not a loadable weights file" in result.stderr
    scored = CliRunner().invoke(main, ["score", str(tmp_path / "clip.mp4"), "--model", str(files["model.pt"]), "--device", "cpu", "-q"])
    assert scored.exit_code == 2 and "not a loadable model file" in scored.stderr


def test_cached_features_never_unpickle(tmp_path, marker):
    cache = FeatureCache(tmp_path / "cache")
    cache.ensure_config({"backbone": "i3d-r50", "feature_dim": 8, "crops": 1})
    cache.write("v", np.zeros((1, 1, 8), np.float32), {})
    np.save(cache.feature_path("v"), np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(CacheError, match="corrupt feature file"):
        cache.load("v")


def test_weights_with_another_sha256_need_the_explicit_flag(tmp_path, inception_weights_path):
    """Same tensors, other bytes: the manifest's sha256 no longer matches, so the file is refused unless trusted."""
    copy = tmp_path / "inception_copy.pt"
    torch.save(load_state_dict_file(inception_weights_path), copy)
    write_lossless(tmp_path / "clip.mp4", pattern_frames(3, 64, 48))
    common = ["extract", str(tmp_path / "clip.mp4"), "--cache", str(tmp_path / "c"), "--backbone", "i3d-inception",
              "--weights", str(copy), "--crops", "1", "--device", "cpu", "-q"]
    refused = CliRunner().invoke(main, common)
    assert refused.exit_code == 2
    line = refused.stderr.strip()
    assert "\n" not in line and "does not match the manifest's" in line and "--allow-unverified-weights" in line
    assert not (tmp_path / "c" / "features").exists()
    allowed = CliRunner().invoke(main, [*common, "--allow-unverified-weights"])
    assert allowed.exit_code == 0, allowed.output
    assert FeatureCache(tmp_path / "c").load("clip").shape == (1, 1, 1024)


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func), {k.arg: ast.unparse(k.value) for k in node.keywords}


def test_no_unsafe_loader_in_the_package():
    """Static guard: pickle only through safe_pickle, torch.load only with weights_only=True, np.load never with pickles."""
    offenders = []
    sources = sorted(path for package in ("extract", "models", "pipeline", "weights") for path in (PACKAGE / package).rglob("*.py"))
    assert len(sources) > 40  # the whole installed package, nothing beside it (virtual environments, bench/)
    for source in sources:
        for node, func, keywords in _calls(ast.parse(source.read_text())):
            where = f"{source.relative_to(PACKAGE)}:{node.lineno}"
            if func in ("pickle.load", "pickle.loads", "pickle.Unpickler", "cPickle.load") and source.name != "safe_pickle.py":
                offenders.append(f"{where} {func}")
            if func == "torch.load" and keywords.get("weights_only") != "True":
                offenders.append(f"{where} torch.load without weights_only=True")
            if func.endswith("np.load") and keywords.get("allow_pickle") == "True":
                offenders.append(f"{where} np.load(allow_pickle=True)")
    assert offenders == []


def test_inception_checkpoint_goes_through_the_restricted_unpickler():
    """The Flax/JAX checkpoint converter reads pickles with restricted_load only."""
    source = (PACKAGE / "extract" / "backbones" / "inception_i3d_flax.py").read_text()
    funcs = {func for _, func, _ in _calls(ast.parse(source))}
    assert "restricted_load" in funcs and not funcs & {"pickle.load", "pickle.loads"}
