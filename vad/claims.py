"""Claim files: which process works on an item, so that several processes share one job.

A claim is a small JSON file (pid, host, process start time) created with O_CREAT|O_EXCL, which
is atomic on local and NFS file systems. Its owner touches it while it works (ClaimHeartbeat);
a claim is stale, and taken over, when its process is gone (same host: pid dead or reused) or,
from any host, when it has not been touched for CLAIM_EXPIRY_S (a node that died or lost the
shared file system).
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

# Owners touch their claim files every minute; one untouched for ten is abandoned (its host died,
# or lost the shared file system) and any process may take it over. Ten beats of slack absorb
# NFS attribute caching and clock skew between hosts.
CLAIM_HEARTBEAT_S = 60.0
CLAIM_EXPIRY_S = 600.0


def _process_start(pid: int) -> str | None:
    """Start time of `pid` in clock ticks since boot (Linux), to tell a reused pid from its first owner."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_identity(pid: int | None = None) -> dict:
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "host": socket.gethostname(), "start": _process_start(pid)}


def read_claim(path: Path) -> dict | None:
    try:
        claim = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written right now, or garbage: stale only if old (see is_stale)
    return claim if isinstance(claim, dict) else {}


def is_stale(claim: dict, path: Path) -> bool:
    """Untouched for CLAIM_EXPIRY_S (any host, garbage included), or of this host with its process gone."""
    try:
        if time.time() - path.stat().st_mtime > CLAIM_EXPIRY_S:
            return True
    except FileNotFoundError:
        return True
    if claim.get("host") != socket.gethostname() or not isinstance(claim.get("pid"), int):
        return False  # another host's process: only its heartbeat tells whether it lives
    try:
        os.kill(claim["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        pass
    return claim.get("start") is not None and _process_start(claim["pid"]) != claim["start"]


def claim(path: Path, owner: dict, mutex: Path) -> dict | None:
    """Claim `path` for `owner`: None when claimed, else the live holder's claim.

    A stale claim is taken over under a host-local flock on `mutex`, so two processes of this
    host cannot both take over the same one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            with _FileMutex(mutex):
                holder = read_claim(path)
                if holder is not None and not is_stale(holder, path):
                    return holder
                path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump(owner, handle)
        return None
    return read_claim(path) or {"pid": None, "host": "?"}


def release_if_owned(path: Path, owner: dict) -> None:
    if path.exists() and read_claim(path) == owner:
        path.unlink(missing_ok=True)


class ClaimHeartbeat:
    """Touches the claim files a process holds every CLAIM_HEARTBEAT_S, from a daemon thread,
    so that other hosts can tell a working owner from a dead one. `path_of` maps a held name to
    its claim file."""

    def __init__(self, path_of: Callable[[str], Path], interval: float = CLAIM_HEARTBEAT_S):
        self.path_of, self.interval = path_of, interval
        self.held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vad-claim-heartbeat", daemon=True)

    def start(self) -> ClaimHeartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def hold(self, video_id: str) -> None:
        with self._lock:
            self.held.add(video_id)

    def drop(self, video_id: str) -> None:
        with self._lock:
            self.held.discard(video_id)

    def beat(self) -> None:
        with self._lock:
            held = list(self.held)
        for video_id in held:
            try:
                os.utime(self.path_of(video_id))
            except FileNotFoundError:  # released meanwhile
                self.drop(video_id)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()


class _FileMutex:
    """An exclusive flock on a file for the duration of a `with` block (host-local)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
