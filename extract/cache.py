"""The feature cache: one feature configuration, one .npy + .json per video.

Every file is written to a temporary name in the same folder and renamed into place, and a
video counts as finished only once its metadata (written after the features) exists, so a
crash never leaves an entry that looks complete.
"""
from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from vad import claims
from vad.claims import process_identity
from vad.errors import RunFailure, VadError
from vad.extract.preprocess import CLIP_LEN
from vad.files import atomic_save_npy, atomic_write_json, temporary_prefix

CACHE_FORMAT = 1
# Keys of cache.json that define the feature configuration: a cache holds exactly one.
CONFIG_KEYS = ("backbone", "weights_sha256", "feature_dim", "crops", "clip_len", "short_side", "crop_size", "profile")
# Metadata fields that, where present (null reads as absent), are whole numbers of at least 1.
COUNT_FIELDS = ("n_snippets", "n_frames", "segments")


class CacheError(VadError):
    """A cache that cannot be used as asked (another configuration, a corrupt entry, a bad id)."""


class CacheWriteError(RunFailure):
    """Writing an entry failed at run time (disk full, permissions); finished entries are intact."""


class FrameCountsMissing(CacheError):
    """Segment-pooled features (Sultani's C3D) without the video's frame count: their frames are unknown."""


@dataclass(frozen=True)
class FrameLayout:
    """Which frames of its video each feature row covers: the one mapping from rows to frames, used by
    the evaluation, `vad eval --scores-out`, the curves of `vad score` and pseudo-label precision.

    Snippets (extracted features, RTFM's released ones): row t covers frames 16t .. 16t+15, the last
    row cut at n_frames. Pooled segments (metadata `segments`: Sultani's C3D features, each video
    pooled to 32 segments): row i of S covers frames floor(i*N/S) .. floor((i+1)*N/S) - 1, Sultani's
    mapping, so GT in the video's real frame numbers evaluates unchanged.
    """

    n_rows: int
    n_frames: int
    pooled: bool = False

    def __post_init__(self):
        if self.n_frames < 0 or (self.pooled and self.n_rows < 1):
            raise ValueError(f"no frame layout for {self.n_frames} frames in {self.n_rows} rows")
        if not self.pooled and self.n_frames > CLIP_LEN * self.n_rows:
            raise ValueError(f"{self.n_frames} frames need {-(-self.n_frames // CLIP_LEN)} snippets, got {self.n_rows}")

    def bounds(self) -> np.ndarray:
        """[n_rows + 1] frame numbers: row r covers frames bounds[r] .. bounds[r+1] - 1 (none when equal)."""
        rows = np.arange(self.n_rows + 1, dtype=np.int64)
        if self.pooled:
            return rows * self.n_frames // self.n_rows
        return np.minimum(rows * CLIP_LEN, self.n_frames)

    def spread(self, row_values: np.ndarray) -> np.ndarray:
        """Each row's value on each of its frames: [n_rows] -> [n_frames]."""
        row_values = np.asarray(row_values, dtype=np.float64)
        if len(row_values) != self.n_rows:
            raise ValueError(f"{len(row_values)} values for {self.n_rows} rows")
        return np.repeat(row_values, np.diff(self.bounds()))


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
        """The entry's metadata, an object whose counts (COUNT_FIELDS) are whole numbers where present."""
        path = self.meta_path(video_id)
        try:
            meta = json.loads(path.read_text())
        except FileNotFoundError:
            raise CacheError(f"{self.root}: no video {video_id!r} in the cache") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CacheError(f"{path}: corrupt metadata ({exc}); re-extract it with --overwrite") from None
        if not isinstance(meta, dict):
            raise self._corrupt(video_id, "not a JSON object")
        for name in COUNT_FIELDS:
            value = meta.get(name)
            if value is not None and (type(value) is not int or value < 1):
                raise self._corrupt(video_id, f"{name} {value!r} is not a whole number of at least 1")
        return meta

    def _corrupt(self, video_id: str, why: str) -> CacheError:
        return CacheError(f"{self.meta_path(video_id)}: corrupt metadata: {why}; re-extract or re-import the video with --overwrite")

    def frame_layout(self, video_id: str, meta: dict | None = None, n_rows: int | None = None) -> FrameLayout:
        """Which frames each feature row of `video_id` covers, from its metadata (FrameLayout).

        Snippets without `n_frames` take 16 * T (RTFM's padded length). Pooled segments need
        `n_frames` (`vad cache import --frame-counts`): FrameCountsMissing otherwise. `meta` and
        `n_rows` (the features' T) save reading them again.
        """
        meta = self.meta(video_id) if meta is None else meta
        rows = self.load(video_id, mmap=True).shape[0] if n_rows is None else int(n_rows)
        recorded, segments, n_frames = meta.get("n_snippets"), meta.get("segments"), meta.get("n_frames")
        if recorded is not None and recorded != rows:
            raise self._corrupt(video_id, f"n_snippets {recorded} does not match its features' {rows} rows")
        if segments is not None:
            if segments != rows:
                raise self._corrupt(video_id, f"segments {segments} does not match its features' {rows} rows")
            if n_frames is None:
                raise FrameCountsMissing(
                    f"{self.meta_path(video_id)}: {video_id!r} holds {rows} segments pooled over the whole video (Sultani's C3D "
                    "features) and no frame count, and GT files count real frames; record the frame counts with "
                    "`vad cache import FILE... --cache CACHE --frame-counts COUNTS` (a CSV video,n_frames, or UCF-Crime's "
                    "test_anomalyv2.txt and test_normalv2.txt)")
            return FrameLayout(rows, n_frames, pooled=True)
        if n_frames is None:
            return FrameLayout(rows, CLIP_LEN * rows)
        if n_frames > CLIP_LEN * rows:
            raise self._corrupt(video_id, f"n_frames {n_frames} does not fit its {rows} snippets of {CLIP_LEN} frames (at most {CLIP_LEN * rows})")
        return FrameLayout(rows, n_frames)

    def record_frame_count(self, video_id: str, n_frames: int) -> bool:
        """Write `n_frames` into the entry's metadata (atomically; the features stay); False when it already holds it."""
        meta = self.meta(video_id)
        if meta.get("n_frames") == n_frames:
            return False
        atomic_write_json(self.meta_path(video_id), {**meta, "n_frames": int(n_frames)})
        return True

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
        """Claim `video_id` for this process: None when claimed, else the live owner's claim
        (see vad.claims: stale claims of dead processes or silent hosts are taken over)."""
        owner = owner or process_identity()
        holder = claims.claim(self.claim_path(video_id), owner, self.root / ".claims.mutex")
        if holder is None:
            self._remove_stale_temporaries(video_id)
        return holder

    def release(self, video_id: str) -> None:
        self.claim_path(video_id).unlink(missing_ok=True)

    def release_if_owned(self, video_id: str, owner: dict) -> None:
        claims.release_if_owned(self.claim_path(video_id), owner)

    def _remove_stale_temporaries(self, video_id: str) -> None:
        # Temporary files of this id can only be left by a killed writer: we hold the claim now.
        # The names atomic_write gives them (cut short for long ids), escaped: an id may hold [ * ?.
        path = self.feature_path(video_id)
        for target in (path, path.with_suffix(".json")):
            for leftover in path.parent.glob(glob.escape(temporary_prefix(target)) + "*.tmp"):
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
