"""Every command and Python example in README.md and docs/*.md runs, or says why it does not.

The convention, for whoever writes the docs:

* A fenced block tagged `bash`, `sh`, `console` or `python` is an example. This test runs it,
  unless the line right before its opening fence is one of these HTML comments (invisible on
  GitHub, visible in the source):

      <!-- not run: REASON -->         shown, never run; REASON says what it needs, e.g.
                                       "needs real data (the UCF-Crime videos)" or "needs a Ray cluster"
      <!-- run by tests/test_X.py -->  another test runs it; that file must name the document

* Every fence names its language; blocks that are not examples say what they are (`text`, `csv`,
  ...). An untagged block, or a tag such as `shell` or `py` that this test does not run, fails.

* Examples run in document order, README.md first and then docs/*.md alphabetically, in one
  temporary folder, as a reader who follows the README's tour would: its first command,
  `vad demo --quick --out demo_out`, leaves generated clips with labels and ground truth, their
  features and a model there; later commands and docs build on that folder (`demo_out/`,
  `cache/`, `run/`). `$VAD_HOME` is a fresh temporary data folder holding only the Inception
  weights. Shell blocks run with `bash -e`, `vad` and `python` from this interpreter's folder
  first on the PATH; Python blocks are exec'd in this process with the folder as working
  directory.

Relative links in README.md and docs/*.md must name files of the repository, and their
#anchors headings of the target page.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", *sorted(f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md"))]
SHELL, PYTHON = ("bash", "sh", "console"), ("python",)
# Tags that would hold commands or code but that this test does not run: refused, not skipped.
UNRUN_CODE_TAGS = {"shell", "zsh", "fish", "py", "python3", "pycon", "ipython", "ps1", "powershell", "cmd", "bat"}
FENCE = re.compile(r"^ {0,3}(```+|~~~+)\s*([^\s`]*)")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>.*?)\s*-->$")
RUN_BY = re.compile(r"^<!--\s*run by\s+(?P<path>tests/[\w/.-]+\.py)\s*-->$")
MARKER = re.compile(r"^<!--\s*(not run|run by)\b")
SHELL_TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    doc: str  # repository-relative path of the document
    line: int  # line number of the opening fence
    language: str  # the fence's info string ('' when missing)
    code: str
    marker: str  # the comment line right before the fence, '' when there is none

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def example(self) -> bool:
        return self.language in SHELL + PYTHON

    @property
    def runnable(self) -> bool:
        return self.example and not self.marker


def parse(doc: str) -> list[Block]:
    """The fenced blocks of a Markdown file, with the marker comment before each."""
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        end = i + 1
        while end < len(lines) and not lines[end].lstrip().startswith(fence):
            end += 1
        previous = lines[i - 1].strip() if i else ""
        blocks.append(Block(doc, i + 1, language, "\n".join(lines[i + 1:end]) + "\n", previous if MARKER.match(previous) else ""))
        i = end + 1
    return blocks


BLOCKS = [block for doc in DOCUMENTS for block in parse(doc)]
RUNNABLE = [block for block in BLOCKS if block.runnable]


def shell_script(block: Block) -> str:
    """The commands of a shell block; in a `console` block, the lines after a `$ ` prompt."""
    if block.language != "console":
        return block.code
    return "".join(line[2:] + "\n" for line in block.code.splitlines() if line.startswith("$ "))


@dataclass
class Outcome:
    ok: bool
    output: str
    seconds: float


def run_block(block: Block, work: Path, env: dict) -> Outcome:
    started = time.perf_counter()
    if block.language in SHELL:
        script = work / ".block.sh"
        script.write_text(shell_script(block))
        try:
            done = subprocess.run(["bash", "-e", str(script)], cwd=work, env=env, capture_output=True, text=True, timeout=SHELL_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            return Outcome(False, f"timed out after {SHELL_TIMEOUT_S} s\n{exc.stdout or ''}{exc.stderr or ''}", time.perf_counter() - started)
        return Outcome(done.returncode == 0, f"exit {done.returncode}\n{done.stdout}{done.stderr}", time.perf_counter() - started)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            exec(compile(block.code, block.id, "exec"), {"__name__": "__docs__"})
    except BaseException:  # noqa: BLE001 - a failing example is a test failure, whatever it raises
        return Outcome(False, out.getvalue() + traceback.format_exc(), time.perf_counter() - started)
    return Outcome(True, out.getvalue(), time.perf_counter() - started)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, inception_weights_path) -> dict[str, Outcome]:
    """Every runnable block, run once in document order in one folder; block id -> outcome."""
    base = tmp_path_factory.mktemp("docs")
    work, home = base / "work", base / "home"
    work.mkdir()
    (home / "weights").mkdir(parents=True)
    weights = Path(inception_weights_path).resolve()
    (home / "weights" / weights.name).symlink_to(weights)
    env = {key: value for key, value in os.environ.items() if key != "VAD_WEIGHTS_DIR"}
    env.update(VAD_HOME=str(home), PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    results = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VAD_HOME", str(home))
        patch.delenv("VAD_WEIGHTS_DIR", raising=False)
        patch.chdir(work)
        for block in RUNNABLE:
            results[block.id] = run_block(block, work, env)
    print("\n".join(f"{key}: {'ok' if value.ok else 'FAILED'} in {value.seconds:.1f} s" for key, value in results.items()))  # pytest -s shows it
    return results


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.id for block in RUNNABLE])
def test_example_runs(block, outcomes):
    outcome = outcomes[block.id]
    assert outcome.ok, f"{block.id} ({block.language}) failed after {outcome.seconds:.1f} s:\n{block.code}\n--- output (end) ---\n{outcome.output[-4000:]}"


def test_every_fence_names_its_language():
    untagged = [block.id for block in BLOCKS if not block.language]
    assert not untagged, "fenced blocks without a language (bash, python, text, csv, ...): " + ", ".join(untagged)


def test_no_example_hides_under_a_tag_that_is_not_run():
    hidden = [f"{block.id} ({block.language})" for block in BLOCKS if block.language in UNRUN_CODE_TAGS]
    assert not hidden, f"tag these bash/sh/console or python so that they run, or mark them: {', '.join(hidden)}"


def test_markers_are_well_formed_and_true():
    problems = []
    for block in BLOCKS:
        if not block.marker:
            continue
        if not block.example:
            problems.append(f"{block.id}: a marker before a {block.language!r} block, which is never run anyway")
        elif match := NOT_RUN.match(block.marker):
            if not match.group("reason"):
                problems.append(f"{block.id}: `not run:` without a reason")
        elif match := RUN_BY.match(block.marker):
            runner = ROOT / match.group("path")
            if not runner.is_file():
                problems.append(f"{block.id}: {match.group('path')} does not exist")
            elif Path(block.doc).name not in runner.read_text(encoding="utf-8"):
                problems.append(f"{block.id}: {match.group('path')} does not mention {Path(block.doc).name}")
        else:
            problems.append(f"{block.id}: unknown marker {block.marker!r} (`<!-- not run: REASON -->` or `<!-- run by tests/X.py -->`)")
    # A marker that is not right before a fence marks nothing.
    for doc in DOCUMENTS:
        lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if MARKER.match(line.strip()) and (number >= len(lines) or not FENCE.match(lines[number])):
                problems.append(f"{doc}:{number}: a marker that is not right before a fenced block")
    assert not problems, "\n".join(problems)


def test_the_readme_python_api_block_is_the_one_test_api_runs():
    import test_api

    marked = [block for block in BLOCKS if block.marker.replace(" ", "") == "<!--runbytests/test_api.py-->"]
    assert [block.doc for block in marked] == ["README.md"]
    assert test_api.readme_example() == marked[0].code


def test_there_is_something_to_run():
    """The README's tour runs: its first block of commands starts with the quick demo."""
    readme = [block for block in RUNNABLE if block.doc == "README.md"]
    assert readme and readme[0].code.startswith("vad demo --quick --out demo_out")


def test_the_readme_lists_every_command():
    from vad.pipeline.cli import main

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines() if line.startswith("| `vad ")]
    missing = [name for name in main.commands if not any(row.startswith(f"| `vad {name}") for row in rows)]
    assert not missing, f"README's commands table lacks: {', '.join(missing)}"


# -- links -------------------------------------------------------------------------------------
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation other than - and _ dropped, spaces to -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found, seen, inside = set(), {}, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            inside = not inside
        if inside or not line.startswith("#"):
            continue
        slug = anchor(line.lstrip("#"))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_links_name_files_and_headings_that_exist():
    problems = []
    for doc in DOCUMENTS:
        text = (ROOT / doc).read_text(encoding="utf-8")
        text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # links inside code blocks are not links
        for match in LINK.finditer(text):
            target = match.group(1) or match.group(2)
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path_part, _, fragment = target.partition("#")
            path = (ROOT / doc).parent / path_part if path_part else ROOT / doc
            if not path.resolve().is_relative_to(ROOT) or not path.exists():
                problems.append(f"{doc}: link to {target}: no such file in the repository")
            elif fragment and path.suffix == ".md" and fragment not in anchors(path):
                problems.append(f"{doc}: link to {target}: {path_part or doc} has no heading with that anchor")
    assert not problems, "\n".join(problems)
