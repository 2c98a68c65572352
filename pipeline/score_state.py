"""What `vad score --out DIR` remembers between runs: a record per scored video and claims.

After a video's outputs are written, OUT/.vad-score/<id>.json (written atomically, last) records
what made them: the model file's sha256, the source video's size and mtime, the settings and the
list of output files. A rerun skips a video whose record matches and whose outputs all exist;
anything else (another model, a touched source, other settings or outputs, --overwrite) scores
it again. The record is removed before a video's outputs are rewritten, so a run killed half way
leaves no record and the next run redoes that video.

Several runs may share one OUT folder: a run claims each video (OUT/.vad-score/<id>.lock, as the
feature cache's claims: vad.claims) before it scores it, and leaves a video claimed by a live
process to that process.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from vad import claims
from vad.claims import ClaimHeartbeat, process_identity
from vad.extract.inputs import VideoItem
from vad.files import atomic_write_json

log = logging.getLogger("vad")

STATE_DIR = ".vad-score"
RECORD_VERSION = 1
# Settings that do not change what is written: a rerun with another batch size is still done.
NOT_RECORDED = frozenset({"model", "batch_size"})


def recorded_settings(config, **extra) -> dict:
    """The settings a record keeps: every ScoreConfig field but NOT_RECORDED, plus the command's own options."""
    values = {name: value for name, value in asdict(config).items() if name not in NOT_RECORDED}
    values.update(extra)
    return json.loads(json.dumps(values, default=str, sort_keys=True))


def source_identity(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime": stat.st_mtime}


class ScoreState:
    """The records and claims of one OUT folder; `key` is what a record must match to count as done
    (the model's sha256 and the settings), `owner` this process's claim identity."""

    def __init__(self, out: Path, model_sha256: str, settings: dict):
        self.folder = Path(out) / STATE_DIR
        self.key = {"version": RECORD_VERSION, "model_sha256": model_sha256, "settings": settings}
        self.owner = process_identity()
        self.heartbeat: ClaimHeartbeat | None = None

    def record_path(self, video_id: str) -> Path:
        return self.folder / f"{video_id}.json"

    def claim_path(self, video_id: str) -> Path:
        return self.folder / f"{video_id}.lock"

    def record(self, video_id: str) -> dict | None:
        try:
            record = json.loads(self.record_path(video_id).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def is_done(self, item: VideoItem, outputs: list[Path]) -> bool:
        """Whether the video's outputs exist and were made from this source by this model with these settings."""
        record = self.record(item.video_id)
        if record is None:
            return False
        try:
            source = source_identity(item.path)
        except OSError:
            return False
        return (all(record.get(name) == value for name, value in self.key.items()) and record.get("source") == source
                and sorted(record.get("outputs", [])) == sorted(str(path) for path in outputs) and all(path.is_file() for path in outputs))

    def forget(self, video_id: str) -> None:
        """Before a video's outputs are rewritten: until its new record is written it is not done."""
        self.record_path(video_id).unlink(missing_ok=True)

    def write(self, item: VideoItem, source: dict, outputs: list[Path], extra: dict | None = None) -> None:
        """The record, after every output: `source` is the video's size and mtime read before it was scored."""
        atomic_write_json(self.record_path(item.video_id), {**self.key, "video": str(item.path), "id": item.video_id, "source": source,
                                                           "outputs": sorted(str(path) for path in outputs), **(extra or {})})

    # -- claims -------------------------------------------------------------------------
    def start(self) -> ScoreState:
        self.heartbeat = ClaimHeartbeat(self.claim_path).start()
        return self

    def stop(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()

    def claim(self, video_id: str) -> dict | None:
        """None when this process now holds the video; else the live holder's claim."""
        holder = claims.claim(self.claim_path(video_id), self.owner, self.folder / ".claims.mutex")
        if holder is None and self.heartbeat is not None:
            self.heartbeat.hold(video_id)
        return holder

    def release(self, video_id: str) -> None:
        if self.heartbeat is not None:
            self.heartbeat.drop(video_id)
        claims.release_if_owned(self.claim_path(video_id), self.owner)
