"""The repository stands alone: no file refers to a path outside the checkout or to notes a user
never has (the development machine's folders, a sibling `shared` folder, private design notes).

Every tracked (or new, not ignored) text file of the package folders, tests/, bench/, docs/,
README.md, Makefile and setup.cfg is scanned; tests/data holds third-party files and only its
README is scanned. Documentation of the project lives in docs/ and tests/data/README.md.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED_FOLDERS = ("vad/", "extract/", "models/", "weights/", "pipeline/", "tests/", "bench/", "docs/")
SCANNED_FILES = ("README.md", "Makefile", "setup.cfg")
THIRD_PARTY = "tests/data/"

# Flagged wherever they appear.
FORBIDDEN = [
    (re.compile(r"\.\./+shared\b"), "a folder beside the checkout"),
    (re.compile(r"(?<![\w-])shared/+reference\b"), "the shared reference folder outside the checkout"),
    (re.compile(r"""\.parents?\b[^\n]{0,20}/\s*["']shared["']"""), "a path built into a folder beside the checkout"),
    (re.compile(r"\b(?:METHOD|INTERFACES|STYLE)\.md\b"), "private notes that are not in the repository"),
    (re.compile(r"(?<![\w./~-])/work(?=/)"), "an absolute path of the development machine"),
]
# Notes cited by path: flagged only when the repository holds no such file.
CITED_NOTE = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*(?:golden/[\w./-]*?\.md|(?:NOTES|ARCHITECTURE)\.md))(?![\w-])")


def outside_references(text: str, exists: Callable[[str], bool]) -> list[tuple[int, str, str]]:
    """(line number, offending text, why) for every reference in `text` to something outside the
    repository; `exists(path)` says whether a cited path is a file of the repository."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for pattern, why in FORBIDDEN:
            found += [(number, match.group(0), why) for match in pattern.finditer(line)]
        for match in CITED_NOTE.finditer(line):
            if not exists(match.group(1)):
                found.append((number, match.group(1), "notes that are not in the repository"))
    return found


def tracked_files() -> list[str]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True).stdout
    except subprocess.CalledProcessError:
        pytest.skip("not a git checkout")
    return sorted({name for name in out.decode("utf-8", "surrogateescape").split("\0") if name})


def in_scope(name: str) -> bool:
    if name.startswith(THIRD_PARTY):
        return name.endswith(".md")
    return name in SCANNED_FILES or name.startswith(SCANNED_FOLDERS)


def text_of(path: Path) -> str | None:
    """The file's text, or None for binary files (a NUL byte, or not UTF-8)."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):  # listed by git but deleted in the working tree
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def existence_check(names: Iterable[str], citing: str) -> Callable[[str], bool]:
    """A cited path exists when it names a repository file relative to the citing file, to the
    repository root, or as the trailing part of a repository path."""
    names = set(names)
    folder = PurePosixPath(citing).parent

    def exists(cited: str) -> bool:
        candidates = {os.path.normpath(str(folder / cited)), os.path.normpath(cited)}
        return bool(candidates & names) or any(name.endswith("/" + cited) for name in names)

    return exists


def test_no_file_refers_outside_the_repository():
    names = tracked_files()
    problems = []
    for name in filter(in_scope, names):
        text = text_of(ROOT / name)
        if text is None:
            continue
        for number, what, why in outside_references(text, existence_check(names, name)):
            problems.append(f"{name}:{number}: {what!r}: {why}")
    assert not problems, "references outside the repository:\n" + "\n".join(problems)


# -- the matcher itself ------------------------------------------------------------------------
# Built from pieces so that this file does not contain what it looks for.
UP_SHARED = ".." + "/shared"
SHARED_REFERENCE = "shared" + "/reference"
MACHINE = "/" + "work" + "/"


@pytest.mark.parametrize("line", [
    f"see {UP_SHARED}/reference/README.md",
    f"Lists default to the files in {UP_SHARED}/reference/annotations",
    f"help='training list (default: the public one in {SHARED_REFERENCE})'",
    f"golden={UP_SHARED}/{'reference'}/golden/i3d-r50",
    f'ANNOTATIONS = Path(__file__).resolve().parents[1].parent / "{"shared"}" / "reference"',
    "The detector follows " + "METHOD" + ".md §7.",
    "(" + "INTERFACES" + ".md, the cache)",
    "as " + "STYLE" + ".md asks",
    "See golden/i3d-r50/" + "ARCHITECTURE" + ".md §1.",
    '"""Inception-I3D (golden/i3d-inception/' + "NOTES" + '.md)."""',
    "ATOL = 1e-4  # " + "NOTES" + ".md §4: float32 port vs the original",
    "# the weight generator of golden/i3d-r50/" + "README.md, rules a-g",
    f"cd {MACHINE}main && make test",
    f"`{MACHINE}main/.venv/bin/python`",
])
def test_matcher_flags_outside_references(line):
    assert outside_references(line, lambda path: False), line


@pytest.mark.parametrize("line", [
    "needs the cache, videos and weights on a shared file system",
    "vad extract /shared/UCF_Crimes/Videos --cache /shared/cache/ucf --backend ray",
    "a shared_memory segment; shared/other is a user's folder",
    "the score correction of docs/method.md (Score correction)",
    "see docs/backbones.md and tests/data/README.md",
    "golden clip40 features: tests/data/golden/i3d-r50/clip40_feats.npy",
    "on a homework/ folder, or /home/me/work/videos",
    "the golden README's measure",
])
def test_matcher_leaves_legitimate_text_alone(line):
    assert outside_references(line, lambda path: False) == [], line


def test_cited_notes_inside_the_repository_are_fine():
    names = ["tests/data/golden/i3d-r50/" + "NOTES" + ".md", "docs/backbones.md"]
    line = "(golden/i3d-r50/" + "NOTES" + ".md; " + "NOTES" + ".md)"
    assert outside_references(line, existence_check(names, "tests/test_x.py")) == []
    assert len(outside_references(line, existence_check(["docs/backbones.md"], "tests/test_x.py"))) == 2
    relative = "[the notes](../tests/data/golden/i3d-r50/" + "ARCHITECTURE" + ".md)"
    assert outside_references(relative, existence_check(["tests/data/golden/i3d-r50/" + "ARCHITECTURE" + ".md"], "docs/backbones.md")) == []
