"""The import graph: no package imports one above it, so the layers have no cycles.

Read from the source (every `import`, at module top or inside a function), not from what a
run happens to load. Layers, bottom to top (vad/__init__.py says the same):
  vad.errors, vad.files, vad.claims, vad.registry, vad.progress, vad.hardware  < vad.weights, vad.synth
  < vad.extract (its backbones included) < vad.models < vad.pipeline < the `vad` facade (vad/__init__.py).
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folder -> package, as setup.cfg's package_dir installs them
FOLDERS = {"vad": "vad", "extract": "vad.extract", "models": "vad.models", "weights": "vad.weights", "pipeline": "vad.pipeline"}
RANKS = {"vad": 0, "vad.weights": 1, "vad.synth": 1, "vad.extract": 2, "vad.models": 3, "vad.pipeline": 4, "vad (facade)": 5}


def module_name(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [FOLDERS[folder], *rest]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    """The layer a module belongs to: its first-level package, the bottom modules of vad/, or
    the facade (vad/__init__.py, which calls the API lazily)."""
    if module == "vad":
        return "vad (facade)"
    parts = module.split(".")
    if len(parts) >= 2 and f"vad.{parts[1]}" in RANKS:
        return f"vad.{parts[1]}"
    return "vad"


def imported_modules(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("vad")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vad") and node.level == 0:
            # `from vad import weights` imports the module vad.weights; `from vad.x import name` imports vad.x
            found |= {f"{node.module}.{alias.name}" if node.module == "vad" else node.module for alias in node.names}
    return found


def violations(modules: dict[str, str]) -> list[str]:
    """'a imports b' for every import of a module from a layer that is not below the importer's."""
    found = []
    for name, source in sorted(modules.items()):
        mine = layer(name)
        for target in sorted(imported_modules(source)):
            theirs = layer(target)
            if theirs != mine and RANKS[theirs] >= RANKS[mine]:
                found.append(f"{name} ({mine}) imports {target} ({theirs})")
    return found


def package_sources() -> dict[str, str]:
    return {module_name(path): path.read_text() for folder in FOLDERS for path in (ROOT / folder).rglob("*.py")}


def test_no_package_imports_one_above_it():
    sources = package_sources()
    assert {"vad.files", "vad.weights.fetch", "vad.extract.engine", "vad.models.trainer", "vad.pipeline.api", "vad.synth.dataset"} <= set(sources)
    assert violations(sources) == []


def test_the_checker_sees_an_upward_import_and_allows_a_downward_one():
    assert violations({"vad.extract.x": "from vad.pipeline.cli import main"}) == [
        "vad.extract.x (vad.extract) imports vad.pipeline.cli (vad.pipeline)"]
    assert violations({"vad.weights.x": "def f():\n    import vad.extract.backbones\n"}) == [
        "vad.weights.x (vad.weights) imports vad.extract.backbones (vad.extract)"]
    assert violations({"vad.synth.x": "from vad import weights"}) == ["vad.synth.x (vad.synth) imports vad.weights (vad.weights)"]
    assert violations({"vad.files": "from vad.pipeline.api import train"}) == ["vad.files (vad) imports vad.pipeline.api (vad.pipeline)"]
    assert violations({"vad.pipeline.x": "from vad.extract.cache import FeatureCache\nfrom vad.errors import VadError",
                       "vad.models.y": "from vad.extract import engine", "vad": "from vad import extract"}) == []


@pytest.mark.parametrize("module", ["vad", "vad.pipeline.cli"])
def test_import_vad_and_the_cli_stay_light(module):
    """`import vad` and `vad --help` load neither torch nor the extraction stack."""
    import subprocess

    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'numpy', 'vad.extract.engine', 'vad.models.trainer') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
