"""Session fixtures shared by the test modules."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from golden_r50 import write_weights


@pytest.fixture(scope="session", autouse=True)
def isolated_data_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """$VAD_HOME is a fresh folder for the session: no test reads or writes the user's real data
    folder (weights, the default model). $VAD_SOURCES_DIR is unset, so a test's fetch cannot keep
    its made-up source packages in the developer's store. The real Inception weights are still
    found: `make weights` installs them into the checkout's weights/ folder ($VAD_WEIGHTS_DIR
    in the Makefile), which is also the package folder of the editable install that vad searches
    read only (docs/data-folder.md)."""
    home = tmp_path_factory.mktemp("vad_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VAD_HOME", str(home))
        patch.delenv("VAD_SOURCES_DIR", raising=False)
        yield home


@pytest.fixture(scope="session")
def r50_weights_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden generator's i3d-r50 weights (docs/backbones.md, "The generated i3d-r50 weights of the tests"), saved once per session."""
    return write_weights(tmp_path_factory.mktemp("weights") / "i3d_r50_golden.pth")


@pytest.fixture(scope="session")
def inception_weights_path() -> Path:
    """The real converted Inception-I3D weights, verified. Fetching them is setup, not a test (no
    test reaches the package registry): when they are missing or bad the tests that need them
    fail and say to run `make weights`."""
    from vad.extract.backbones import get_backbone
    from vad.weights import WeightsError, resolve, verify_file

    spec = get_backbone("i3d-inception")
    try:
        path = resolve(spec.weights)
        verify_file(spec.weights, spec.build(), path)
    except WeightsError as exc:
        pytest.fail(f"the real i3d-inception weights are needed: run `make weights` first ({exc})", pytrace=False)
    return path


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance of 2 CPUs for one test module (the Ray backends' tests)."""
    ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'vad[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()
