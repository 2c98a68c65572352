"""The data folder (vad.home): where it is, the weights folders searched around it, and the
commands that show it (`vad info`, `vad --version`, `vad weights list`)."""
from __future__ import annotations

import json
from pathlib import Path

import platformdirs
import pytest
from click.testing import CliRunner

import vad.weights
from vad import home
from vad.errors import RunFailure
from vad.pipeline.cli import main
from vad.weights import WeightsEntry, install_dir, resolve, search_dirs

ENTRY = WeightsEntry(name="tiny", file="tiny.pt", description="test", sha256=None, licence="test")


@pytest.fixture()
def folders(tmp_path, monkeypatch) -> dict[str, Path]:
    """A data folder, a $VAD_WEIGHTS_DIR and a stand-in for the package's own weights/ folder."""
    made = {name: tmp_path / name for name in ("home", "env", "package")}
    monkeypatch.setenv("VAD_HOME", str(made["home"]))
    monkeypatch.delenv("VAD_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(vad.weights, "WEIGHTS_DIR", made["package"])
    return made


def test_data_folder_is_vad_home_else_the_per_user_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("VAD_HOME", str(tmp_path / "h"))
    assert home.data_dir() == tmp_path / "h" and home.data_dir_origin() == "$VAD_HOME"
    assert home.weights_dir() == tmp_path / "h/weights" and home.default_model_record() == tmp_path / "h/default_model.json"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VAD_HOME", "relative")
    assert home.data_dir() == tmp_path / "relative"  # absolute, so that what is recorded or printed stays true elsewhere
    monkeypatch.delenv("VAD_HOME")
    assert home.data_dir() == Path(platformdirs.user_data_dir("vad", appauthor=False)).absolute()
    assert home.data_dir_origin() == "the per-user data folder"


def test_weights_are_searched_env_then_data_folder_then_the_package_copy(folders, monkeypatch):
    assert search_dirs() == [folders["home"] / "weights", folders["package"]]
    assert install_dir() == folders["home"] / "weights"  # fetch never installs into the package
    monkeypatch.setenv("VAD_WEIGHTS_DIR", str(folders["env"]))
    assert search_dirs() == [folders["env"], folders["home"] / "weights", folders["package"]]
    assert install_dir() == folders["env"]
    for folder in ("package", "home", "env"):  # each found file shadows the ones after it
        path = (folders["home"] / "weights" if folder == "home" else folders[folder]) / "tiny.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        assert resolve(ENTRY) == path
    monkeypatch.setenv("VAD_WEIGHTS_DIR", str(folders["package"]))  # the Makefile's case in a checkout: listed once
    assert search_dirs() == [folders["package"], folders["home"] / "weights"]


def test_unwritable_state_is_one_line_naming_the_setting(folders, monkeypatch):
    from vad.pipeline.demo import _record_default_model
    from vad.weights.fetch import install_atomically

    blocker = folders["home"].parent / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("VAD_HOME", str(blocker / "home"))  # a folder below a file cannot be made
    with pytest.raises(RunFailure, match=r"^cannot write .*a_file/home/default_model.json \(.*\); set \$VAD_HOME to a writable folder$"):
        _record_default_model(Path("model.pt"))
    monkeypatch.setenv("VAD_WEIGHTS_DIR", str(blocker / "weights"))
    with pytest.raises(RunFailure, match=r"^cannot write .*a_file/weights/tiny.pt \(.*\); set \$VAD_WEIGHTS_DIR to a writable folder$"):
        install_atomically(b"data", install_dir() / "tiny.pt")


def test_version_info_and_weights_list_show_the_data_folder(folders, monkeypatch):
    runner = CliRunner()
    version = runner.invoke(main, ["--version"])
    assert version.exit_code == 0 and version.stdout.splitlines()[1] == f"data folder: {folders['home']} ($VAD_HOME)"

    monkeypatch.setenv("VAD_WEIGHTS_DIR", str(folders["env"]))
    result = runner.invoke(main, ["info", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["data_dir"] == str(folders["home"]) and info["data_dir_origin"] == "$VAD_HOME"
    assert [(d["path"], d["fetch_installs_here"]) for d in info["weights_dirs"]] == [
        (str(folders["env"]), True), (str(folders["home"] / "weights"), False), (str(folders["package"]), False)]
    assert info["default_model"] is None and "no default model" in info["default_model_problem"]
    assert info["torch"] and info["device"] in ("cpu", "cuda") and info["cpu"]
    text = runner.invoke(main, ["info"])
    assert text.exit_code == 0 and f"data folder    {folders['home']} ($VAD_HOME)" in text.stdout

    listed = runner.invoke(main, ["weights", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines()[0] == f"data folder: {folders['home']} ($VAD_HOME)"
    assert f"`fetch` installs into {folders['env']}" in listed.stdout.splitlines()[1]
