"""`vad info`: which vad runs, where it keeps its state, and on what it computes.

The first thing to paste into a bug report, and the answer to "where did my weights go?": the
data folder and the weights folders are computed by the same functions that the other commands
use (vad.home, vad.weights), not described from memory.
"""
from __future__ import annotations

import json

import click

from vad.pipeline.common import verbosity


def _weights_folders() -> list[dict]:
    """Each weights folder in search order, with why it is searched and whether it exists."""
    import os

    from vad import home
    from vad.weights import WEIGHTS_DIR, WEIGHTS_ENV, install_dir, search_dirs

    def origin(folder) -> str:
        if os.environ.get(WEIGHTS_ENV) and os.path.abspath(folder) == os.path.abspath(os.environ[WEIGHTS_ENV]):
            return f"${WEIGHTS_ENV}"
        if os.path.abspath(folder) == os.path.abspath(home.weights_dir()):
            return "data folder"
        if os.path.abspath(folder) == os.path.abspath(WEIGHTS_DIR):
            return "package folder: read only, where older versions installed weights"
        return "?"

    installs = os.path.abspath(install_dir())
    return [{"path": str(folder), "origin": origin(folder), "exists": folder.is_dir(),
             "fetch_installs_here": os.path.abspath(folder) == installs} for folder in search_dirs()]


def _runtimes() -> dict:
    """Each --runtime's installed package version, or None with the extra that installs it (read from the
    package metadata, so that listing them imports none of them)."""
    from importlib.metadata import PackageNotFoundError, version

    from vad.runtimes import RUNTIMES

    found = {}
    for name in RUNTIMES:
        try:
            found[name] = version(RUNTIMES[name].package)
        except PackageNotFoundError:
            found[name] = None
    return found


def collect() -> dict:
    """Everything `vad info` reports, as one JSON-able dict."""
    import torch

    from vad import home
    from vad.errors import VadError
    from vad.hardware import cpu_description

    vad_version = home.installed_version() or "unknown (not installed)"
    try:
        from vad.pipeline.score import default_model_path

        default_model, default_model_problem = str(default_model_path()), None
    except VadError as exc:  # none recorded, or a record naming a file that is gone: say so, do not fail
        default_model, default_model_problem = None, str(exc)
    cuda = torch.cuda.is_available()
    return {
        "version": vad_version,
        "data_dir": str(home.data_dir()),
        "data_dir_origin": home.data_dir_origin(),
        "default_model_record": str(home.default_model_record()),
        "weights_dirs": _weights_folders(),
        "default_model": default_model,
        "default_model_problem": default_model_problem,
        "torch": str(torch.__version__),
        "runtimes": _runtimes(),
        "device": "cuda" if cuda else "cpu",  # what --device auto picks
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        **cpu_description(),
    }


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@verbosity
def info(as_json: bool) -> None:
    """Version, data folder, weights folders, default model, torch and the device.

    The data folder ($VAD_HOME, else the per-user data folder) holds the weights that `vad
    weights fetch` installs (unless $VAD_WEIGHTS_DIR is set) and the record of the default model
    of `vad score`; vad never writes into its installed package.
    """
    report = collect()
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    click.echo(f"vad            {report['version']}")
    click.echo(f"data folder    {report['data_dir']} ({report['data_dir_origin']})")
    click.echo("weights        searched in this order:")
    for folder in report["weights_dirs"]:
        notes = [folder["origin"]] + ([] if folder["exists"] else ["absent"]) + (["`vad weights fetch` installs here"] if folder["fetch_installs_here"] else [])
        click.echo(f"                 {folder['path']} ({'; '.join(notes)})")
    click.echo(f"default model  {report['default_model'] or 'none: ' + report['default_model_problem']}")
    click.echo(f"torch          {report['torch']}")
    from vad.runtimes import RUNTIMES

    runtimes = [f"{name} {found}" if found else f"{name} (absent: pip install 'vad[{RUNTIMES[name].extra}]')"
                for name, found in report["runtimes"].items()]
    click.echo(f"runtimes       {'; '.join(runtimes)}")
    device = f"cuda ({report['gpu']})" if report["gpu"] else "cpu"
    click.echo(f"device         {device}; CPU {report['cpu']} ({', '.join(report['cpu_flags']) or 'no listed flags'}; "
               f"torch kernels {report['cpu_capability']})")
