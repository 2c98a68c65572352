"""Which videos to extract, and their ids: INPUT files, folders (recursive) and @list files."""
from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from vad.errors import VadError

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .avi .mkv .mov .webm .mpg .mpeg .m4v .wmv .flv .ts .mts .3gp .ogv".split()
)


log = logging.getLogger("vad")


class InputError(VadError):
    """An INPUT that names nothing usable; the message says which and why."""


@dataclass(frozen=True)
class VideoItem:
    video_id: str  # path relative to the INPUT folder, no extension, '/'-separated; or the file's stem
    path: Path


def _walk_videos(folder: Path) -> list[Path]:
    # followlinks=False: a symlink loop in an input folder cannot make the walk run forever.
    found = []
    for directory, subdirs, files in os.walk(folder, followlinks=False):
        subdirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in VIDEO_EXTENSIONS and not name.startswith("."):
                found.append(Path(directory) / name)
    return found


def missing_file_reason(path: Path) -> str:
    """Why `path` is not a regular file, in words: a FIFO named .mp4 is not "no such file"."""
    if path.is_symlink() and not path.exists():
        return "broken symbolic link or symlink loop"
    if not path.exists():
        return "no such file"
    kind = next((name for test, name in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                                         (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder")) if test(path.stat().st_mode)), "not a file")
    return f"not a regular file ({kind})"


def _expand(entry: str, origin: str) -> list[VideoItem]:
    path = Path(entry).expanduser()
    if path.is_dir():
        videos = _walk_videos(path)
        if not videos:
            log.warning("%s: %s: no video files in this folder", origin, entry)
        return [VideoItem(video.relative_to(path).with_suffix("").as_posix(), video) for video in videos]
    if path.is_file():
        return [VideoItem(path.stem, path)]
    reason = missing_file_reason(path)
    raise InputError(f"{origin}: {entry}: {'no such file or folder' if reason == 'no such file' else reason}")


def discover(inputs: list[str]) -> list[VideoItem]:
    """Expand INPUT arguments into video items with unique ids, in a stable order."""
    items: list[VideoItem] = []
    for entry in inputs:
        if entry.startswith("@"):
            list_path = Path(entry[1:]).expanduser()
            try:
                lines = list_path.read_text().splitlines()
            except OSError as exc:
                raise InputError(f"{entry}: cannot read list file ({exc.strerror})") from None
            for number, line in enumerate(lines, 1):
                if line.strip() and not line.lstrip().startswith("#"):
                    items += _expand(line.strip(), f"{list_path}:{number}")
        else:
            items += _expand(entry, "INPUT")
    seen: dict[str, Path] = {}
    unique = []
    for item in items:
        if item.video_id in seen:
            if seen[item.video_id].resolve() == item.path.resolve():
                continue
            raise InputError(
                f"two videos would get the id {item.video_id!r}: {seen[item.video_id]} and {item.path}; "
                "pass their common parent folder instead, so ids keep their relative paths"
            )
        seen[item.video_id] = item.path
        unique.append(item)
    return unique


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise InputError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"--shard {text!r}: need 0 <= I < N")
    return index, count


def in_shard(video_id: str, shard: tuple[int, int]) -> bool:
    """Stable across machines and Python runs (unlike hash()): sha1 of the id modulo N."""
    index, count = shard
    return int(hashlib.sha1(video_id.encode()).hexdigest(), 16) % count == index
