"""The feature cache: one feature configuration, one .npy + .json per video.

Every file is written to a temporary name in the same folder and renamed into place, and a
video counts as finished only once its metadata (written after the features) exists, so a
crash never leaves an entry that looks complete.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np

CACHE_FORMAT = 1
# Owners touch their claim files every minute; one untouched for ten is abandoned (its host died,
# or lost the shared file system) and any process may take it over. Ten beats of slack absorb
# NFS attribute caching and clock skew between hosts.
CLAIM_HEARTBEAT_S = 60.0
CLAIM_EXPIRY_S = 600.0
# Keys of cache.json that define the feature configuration: a cache holds exactly one.
CONFIG_KEYS = ("backbone", "weights_sha256", "feature_dim", "crops", "clip_len", "short_side", "crop_size", "profile")


class CacheError(Exception):
    """A cache that cannot be used as asked (another configuration, a corrupt entry, a bad id)."""


class CacheWriteError(Exception):
    """Writing an entry failed at run time (disk full, permissions); finished entries are intact."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once: os.umask can only be read by setting it, which is not thread-safe to repeat.
UMASK = _umask()


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Run `write` on a temporary file beside `path`, fsync, then rename it into place.

    The one place that makes writes atomic: cache entries, model files and weights all use it,
    so a crash or a full disk never leaves a half-written file under the final name. The file
    gets the mode a plain open() would give (0666 less the umask), not the temporary file's
    0600, so a cache on a shared file system stays readable to colleagues' jobs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def check_video_id(video_id: str) -> str:
    """Refuse ids that would escape the cache folder or be ambiguous on disk."""
    pure = PurePosixPath(video_id)
    if (
        not video_id
        or "\\" in video_id
        or "\0" in video_id
        or pure.is_absolute()
        or any(part in ("", ".", "..") for part in video_id.split("/"))
    ):
        raise CacheError(f"invalid video id {video_id!r}: ids are relative '/'-separated paths without '..'")
    return video_id


class FeatureCache:
    """CACHE/cache.json, CACHE/features/<id>.npy [T,C,D] float32, CACHE/features/<id>.json, failures.jsonl."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.features_dir = self.root / "features"

    # -- configuration ---------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / "cache.json"

    def exists(self) -> bool:
        return self.config_path.is_file()

    @property
    def config(self) -> dict:
        try:
            config = json.loads(self.config_path.read_text())
        except FileNotFoundError:
            raise CacheError(f"{self.root}: not a feature cache (no cache.json); run `vad extract` or `vad cache import`") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CacheError(f"{self.config_path}: corrupt cache.json ({exc})") from None
        if config.get("format") != CACHE_FORMAT:
            raise CacheError(f"{self.config_path}: unsupported cache format {config.get('format')!r} (expected {CACHE_FORMAT})")
        return config

    @property
    def feature_dim(self) -> int:
        return int(self.config["feature_dim"])

    def ensure_config(self, config: dict) -> dict:
        """Create cache.json, or check that the existing one has the same feature configuration."""
        wanted = {"format": CACHE_FORMAT, **config}
        if not self.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.config_path, wanted)
            return wanted
        current = self.config
        clashes = [
            f"{key}: cache has {current.get(key)!r}, asked for {wanted.get(key)!r}"
            for key in CONFIG_KEYS
            if key in wanted and current.get(key) != wanted.get(key)
        ]
        if clashes:
            raise CacheError(
                f"{self.root} holds another feature configuration ({'; '.join(clashes)}); "
                "use another --cache folder"
            )
        return current

    # -- entries ----------------------------------------------------------------------
    def feature_path(self, video_id: str) -> Path:
        return self.features_dir / f"{check_video_id(video_id)}.npy"

    def meta_path(self, video_id: str) -> Path:
        return self.features_dir / f"{check_video_id(video_id)}.json"

    def is_done(self, video_id: str) -> bool:
        meta = self.meta_path(video_id)
        return meta.is_file() and self.feature_path(video_id).is_file()

    def video_ids(self) -> list[str]:
        if not self.features_dir.is_dir():
            return []
        ids = []
        for meta in self.features_dir.rglob("*.json"):
            if meta.name.startswith("."):
                continue
            video_id = meta.relative_to(self.features_dir).with_suffix("").as_posix()
            if meta.with_suffix(".npy").is_file():
                ids.append(video_id)
        return sorted(ids)

    def write(self, video_id: str, features: np.ndarray, meta: dict) -> None:
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.ndim != 3:
            raise CacheError(f"features of {video_id!r} must be [T, C, D], got shape {features.shape}")
        # Features first, metadata last: the metadata file is the "finished" mark.
        atomic_save_npy(self.feature_path(video_id), features)
        full_meta = {"video_id": video_id, "n_snippets": int(features.shape[0]), **meta}
        atomic_write_json(self.meta_path(video_id), full_meta)

    def entry_problem(self, video_id: str) -> str | None:
        """Why a finished-looking entry cannot be used (corrupt metadata or features), else None.

        Reads the .npy header only (memory-mapped), so checking a whole cache stays cheap.
        """
        try:
            meta = self.meta(video_id)
            features = self.load(video_id, mmap=True)
        except CacheError as exc:
            return str(exc)
        if not isinstance(meta, dict) or meta.get("n_snippets") != features.shape[0]:
            return f"{self.meta_path(video_id)}: metadata does not match the features' {features.shape[0]} snippets"
        return None

    def meta(self, video_id: str) -> dict:
        path = self.meta_path(video_id)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise CacheError(f"{self.root}: no video {video_id!r} in the cache") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CacheError(f"{path}: corrupt metadata ({exc}); re-extract it with --overwrite") from None

    def load(self, video_id: str, mmap: bool = False) -> np.ndarray:
        """Features [T, C, D] float32; never unpickles (allow_pickle=False)."""
        path = self.feature_path(video_id)
        try:
            array = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
        except FileNotFoundError:
            raise CacheError(f"{self.root}: no features for video {video_id!r}") from None
        except (ValueError, OSError, EOFError) as exc:
            raise CacheError(f"{path}: corrupt feature file ({exc}); re-extract it with --overwrite") from None
        if array.ndim != 3 or array.dtype != np.float32:
            raise CacheError(f"{path}: expected float32 [T, C, D], got {array.dtype} {array.shape}")
        return array

    def iter_features(self, video_ids: list[str] | None = None) -> Iterator[tuple[str, np.ndarray]]:
        for video_id in video_ids if video_ids is not None else self.video_ids():
            yield video_id, self.load(video_id)

    # -- claims: several processes on one cache -----------------------------------------
    def claim_path(self, video_id: str) -> Path:
        return self.features_dir / f"{check_video_id(video_id)}.lock"

    def claim(self, video_id: str, owner: dict | None = None) -> dict | None:
        """Claim `video_id` for this process: None when claimed, else the live owner's claim.

        The claim file is created with O_CREAT|O_EXCL (atomic on local and NFS file systems) and
        holds pid, host and the process start time; its owner touches it while it works
        (ClaimHeartbeat). A claim is stale and taken over when its process is gone (same host:
        pid dead or reused) or, from any host, when it has not been touched for CLAIM_EXPIRY_S
        (a node that died or lost the shared file system). The takeover runs under a host-local
        flock so two processes of this host cannot both take over the same stale claim.
        """
        owner = owner or process_identity()
        path = self.claim_path(video_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                with self._takeover_mutex():
                    holder = _read_claim(path)
                    if holder is not None and not _is_stale(holder, path):
                        return holder
                    path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(owner, handle)
            self._remove_stale_temporaries(video_id)
            return None
        return _read_claim(path) or {"pid": None, "host": "?"}

    def release(self, video_id: str) -> None:
        self.claim_path(video_id).unlink(missing_ok=True)

    def release_if_owned(self, video_id: str, owner: dict) -> None:
        path = self.claim_path(video_id)
        if path.exists() and _read_claim(path) == owner:
            path.unlink(missing_ok=True)

    def _takeover_mutex(self):
        return _FileMutex(self.root / ".claims.mutex")

    def _remove_stale_temporaries(self, video_id: str) -> None:
        # Temporary files of this id can only be left by a killed writer: we hold the claim now.
        path = self.feature_path(video_id)
        for pattern in (f".{path.name}.*.tmp", f".{path.with_suffix('.json').name}.*.tmp"):
            for leftover in path.parent.glob(pattern):
                leftover.unlink(missing_ok=True)

    # -- failures ---------------------------------------------------------------------
    @property
    def failures_path(self) -> Path:
        return self.root / "failures.jsonl"

    def record_failure(self, video_id: str, source: str, error: str) -> None:
        # One short append per line; O_APPEND keeps concurrent writers' lines whole.
        line = json.dumps({"video_id": video_id, "source": source, "error": error}) + "\n"
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.failures_path, "a", encoding="utf-8") as handle:
            handle.write(line)

    def failures(self) -> list[dict]:
        if not self.failures_path.is_file():
            return []
        return [json.loads(line) for line in self.failures_path.read_text().splitlines() if line.strip()]


def _process_start(pid: int) -> str | None:
    """Start time of `pid` in clock ticks since boot (Linux), to tell a reused pid from its first owner."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_identity(pid: int | None = None) -> dict:
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "host": socket.gethostname(), "start": _process_start(pid)}


def _read_claim(path: Path) -> dict | None:
    try:
        claim = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written right now, or garbage: stale only if old (see _is_stale)
    return claim if isinstance(claim, dict) else {}


def _is_stale(claim: dict, path: Path) -> bool:
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


class ClaimHeartbeat:
    """Touches the claim files a process holds every CLAIM_HEARTBEAT_S, from a daemon thread,
    so that other hosts can tell a working owner from a dead one (see FeatureCache.claim)."""

    def __init__(self, cache: FeatureCache, interval: float = CLAIM_HEARTBEAT_S):
        self.cache, self.interval = cache, interval
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
                os.utime(self.cache.claim_path(video_id))
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
