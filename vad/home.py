"""The user's data folder: the one place where vad keeps state that outlives a command.

vad never writes inside its installed package: a non-editable install may sit in a read-only
site-packages, and a shared install must not let one user's `vad demo` become everyone's default
model. What vad keeps between commands lives here instead:

    <data>/weights/<file>        backbone weights that `vad weights fetch` installs
    <data>/default_model.json    {"model": PATH}: the model `vad score` uses without --model

<data> is `$VAD_HOME` when set, else the platform's per-user data folder
(platformdirs.user_data_dir("vad"): ~/.local/share/vad on Linux). docs/data-folder.md describes the
layout, the other settings ($VAD_WEIGHTS_DIR, $VAD_SOURCES_DIR) and how to migrate from the
package's weights/ folder of older versions.

The neutral bottom layer: it imports only the standard library, platformdirs and vad.errors.
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from vad.errors import RunFailure

APP = "vad"
HOME_ENV = "VAD_HOME"
DEFAULT_MODEL_RECORD = "default_model.json"


class DataFolderError(RunFailure):
    """The data folder (or a folder chosen by a setting) cannot be written; the message says which and how to choose another."""


def data_dir() -> Path:
    """`$VAD_HOME` when set, else the per-user data folder; absolute, possibly not created yet."""
    chosen = os.environ.get(HOME_ENV)
    if chosen:
        return Path(chosen).expanduser().absolute()
    # appauthor=False: on Windows the folder is ...\vad, not ...\vad\vad
    return Path(platformdirs.user_data_dir(APP, appauthor=False)).absolute()


def data_dir_origin() -> str:
    """Why the data folder is where it is, for `vad info` and `vad --version`."""
    return f"${HOME_ENV}" if os.environ.get(HOME_ENV) else "the per-user data folder"


def weights_dir() -> Path:
    """Where `vad weights fetch` installs weights unless $VAD_WEIGHTS_DIR says otherwise."""
    return data_dir() / "weights"


def default_model_record() -> Path:
    """The file naming the default model of `vad score` ({"model": PATH}); `vad demo` writes it."""
    return data_dir() / DEFAULT_MODEL_RECORD


def unwritable(path: Path, exc: OSError, setting: str = HOME_ENV) -> DataFolderError:
    """The one-line error for a failed write of vad's state, naming the setting that moves it."""
    reason = exc.strerror or type(exc).__name__
    return DataFolderError(f"cannot write {path} ({reason}); set ${setting} to a writable folder")


def installed_version() -> str | None:
    """The installed vad's version, as model files, exports and `vad info` record it; None when run
    from a source tree that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vad")
    except PackageNotFoundError:
        return None
