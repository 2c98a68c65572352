"""Files written atomically: a temporary name beside the target, fsync, then rename.

Cache entries, model files, tables and weights all go through here, so a crash or a full disk
never leaves a half-written file under its final name. A final name the file system accepts
always gets a temporary name it accepts (temporary_prefix), and `output_problem` tells before
a run whether a file can be written at all, so commands refuse an output before the work.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once: os.umask can only be read by setting it, which is not thread-safe to repeat.
UMASK = _umask()

DEFAULT_NAME_MAX = 255  # bytes of one path component, where the file system does not say
TEMPORARY_EXTRA = len("..") + 8 + len(".tmp")  # what `.NAME.XXXXXXXX.tmp` adds to NAME: 14 bytes


def name_max(folder: Path) -> int:
    """The longest file name, in bytes, that the file system holding `folder` (or its nearest
    existing ancestor) accepts: NAME_MAX, 255 on ext4, xfs, btrfs and tmpfs."""
    folder = Path(folder)
    for candidate in (folder, *folder.parents):
        try:
            return int(os.pathconf(candidate, "PC_NAME_MAX"))
        except (OSError, ValueError):
            continue
    return DEFAULT_NAME_MAX


def temporary_prefix(path: Path) -> str:
    """`.NAME.` for the temporary file of `path`, NAME cut short where `.NAME.XXXXXXXX.tmp`
    would pass the file system's NAME_MAX: a legal final name always gets a legal temporary name."""
    limit = name_max(path.parent) - TEMPORARY_EXTRA
    raw = os.fsencode(path.name)
    if len(raw) > limit:
        raw = raw[:max(1, limit)]
    return f".{os.fsdecode(raw)}."


def output_problem(path: Path) -> str | None:
    """Why the file `path` cannot be written, or None: its name or a missing folder's name longer
    than the file system allows, a folder where the file goes, a file where a folder must be, or
    a folder this user cannot write (the nearest existing one, as the folders are made on write).
    Checked before a run starts, so a command refuses an output before it does the work."""
    path = Path(path)
    if path.is_dir():
        return "a folder is there"
    ancestor = path.parent
    missing = []
    while not ancestor.exists() and not ancestor.is_symlink():
        missing.append(ancestor.name)
        ancestor = ancestor.parent
    limit = name_max(ancestor)
    for name in [path.name, *missing]:
        if len(os.fsencode(name)) > limit:
            return f"the name {name[:24]}... is {len(os.fsencode(name))} bytes, longer than the {limit} the file system allows"
    if not ancestor.is_dir():
        return f"{ancestor} is {'a broken link' if ancestor.is_symlink() and not ancestor.exists() else 'a file'}, not a folder"
    kwargs = {"effective_ids": True} if os.access in os.supports_effective_ids else {}
    if not os.access(ancestor, os.W_OK | os.X_OK, **kwargs):
        return f"the folder {ancestor} is not writable by this user"
    return None


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Run `write` on a temporary file beside `path`, fsync, then rename it into place.

    The file gets the mode a plain open() would give (0666 less the umask), not the temporary file's
    0600, so a cache on a shared file system stays readable to colleagues' jobs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~UMASK)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda handle: np.save(handle, array, allow_pickle=False))
