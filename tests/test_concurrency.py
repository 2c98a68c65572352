"""Several `vad extract` processes on one cache, claims, and a full disk.

Claims (CACHE/features/<id>.lock, O_CREAT|O_EXCL, pid + host + process start time) make sure
no two processes extract the same video; a claim whose process died on this host, or whose
owner stopped touching it for CLAIM_EXPIRY_S (any host), is taken over.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from vad.claims import CLAIM_EXPIRY_S, ClaimHeartbeat, process_identity
from vad.extract.cache import FeatureCache
from vad.files import temporary_prefix
from vad.pipeline.cli import main

from videos import pattern_frames, write_lossless


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_claims_exclusive_stale_taken_over_other_hosts_respected(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    me = process_identity()
    assert cache.claim("a/x", me) is None
    other = {"pid": os.getppid(), "host": socket.gethostname(), "start": None}
    assert cache.claim("a/x", other) == me  # held by a live process: refused, owner named
    cache.release("a/x")
    assert cache.claim("a/x", other) is None
    cache.release_if_owned("a/x", me)  # not mine: stays
    assert cache.claim_path("a/x").is_file()
    cache.release_if_owned("a/x", other)
    assert not cache.claim_path("a/x").exists()

    dead = {"pid": dead_pid(), "host": socket.gethostname(), "start": "1"}
    cache.claim_path("b").write_text(json.dumps(dead))
    (cache.features_dir / ".b.npy.abc.tmp").write_bytes(b"half")  # what the dead writer left
    assert cache.claim("b", me) is None
    assert json.loads(cache.claim_path("b").read_text()) == me
    assert not (cache.features_dir / ".b.npy.abc.tmp").exists()
    # an id too long for `.NAME.XXXXXXXX.tmp` gets a temporary name cut short; a dead writer's is found all the same
    long_id = "L" * 240 + "[x]"
    cache.claim_path(long_id).write_text(json.dumps(dead))
    leftover = cache.features_dir / (temporary_prefix(cache.feature_path(long_id)) + "abcd1234.tmp")
    leftover.write_bytes(b"half")
    assert len(leftover.name.encode()) <= 255 and cache.claim(long_id, me) is None and not leftover.exists()

    reused = {"pid": os.getpid(), "host": socket.gethostname(), "start": "not-my-start-time"}
    cache.claim_path("c").write_text(json.dumps(reused))
    assert cache.claim("c", me) is None  # same pid, other start time: the pid was reused

    remote = {"pid": dead_pid(), "host": "another-host.example", "start": "1"}
    cache.claim_path("d").write_text(json.dumps(remote))
    assert cache.claim("d", me) == remote  # its pid means nothing here: only its heartbeat tells


def test_claims_of_other_hosts_expire_when_their_heartbeat_stops(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    me = process_identity()
    remote = {"pid": 1, "host": "another-host.example", "start": "1"}
    silent = time.time() - CLAIM_EXPIRY_S - 5
    cache.features_dir.mkdir(parents=True)
    cache.claim_path("gone").write_text(json.dumps(remote))
    os.utime(cache.claim_path("gone"), (silent, silent))
    assert cache.claim("gone", me) is None and json.loads(cache.claim_path("gone").read_text()) == me
    cache.claim_path("garbage").write_text("{trunc")  # a writer died mid-claim
    os.utime(cache.claim_path("garbage"), (silent, silent))
    assert cache.claim("garbage", me) is None

    cache.claim_path("alive").write_text(json.dumps(remote))
    os.utime(cache.claim_path("alive"), (silent, silent))
    heartbeat = ClaimHeartbeat(cache.claim_path, interval=0.05).start()
    heartbeat.hold("alive")  # as the remote owner's heartbeat would
    try:
        deadline = time.time() + 5
        while time.time() - cache.claim_path("alive").stat().st_mtime > 1 and time.time() < deadline:
            time.sleep(0.05)
        assert cache.claim("alive", me) == remote  # touched again: still held
        cache.release("alive")
        time.sleep(0.2)
        assert "alive" not in heartbeat.held  # released meanwhile: the heartbeat lets go
    finally:
        heartbeat.stop()


def test_two_processes_share_the_work(tmp_path, r50_weights_path):
    videos = tmp_path / "videos"
    for i in range(4):
        write_lossless(videos / f"v{i}.mp4", pattern_frames(6, 64, 48, seed=i))
    cache_dir = tmp_path / "cache"
    vad = str(Path(sys.executable).with_name("vad"))
    args = [vad, "extract", str(videos), "--cache", str(cache_dir), "--weights", str(r50_weights_path),
            "--crops", "1", "--profile", "direct", "--device", "cpu", "--batch-size", "1", "-q"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    summaries = [json.loads(out) for out, _ in outs]
    assert sum(s["extracted"] for s in summaries) == 4  # every video written exactly once
    for s in summaries:
        assert s["extracted"] + s["skipped"] + s["claimed"] == 4
    cache = FeatureCache(cache_dir)
    assert cache.video_ids() == [f"v{i}" for i in range(4)]
    assert all(cache.entry_problem(v) is None and cache.load(v).shape == (1, 1, 2048) for v in cache.video_ids())
    assert sorted(p.name for p in (cache_dir / "features").iterdir()) == sorted(f"v{i}.{e}" for i in range(4) for e in ("npy", "json"))


def test_a_claimed_video_is_left_to_its_owner(tmp_path, r50_weights_path):
    videos = tmp_path / "videos"
    for i in range(2):
        write_lossless(videos / f"v{i}.mp4", pattern_frames(4, 64, 48, seed=i))
    cache = FeatureCache(tmp_path / "cache")
    owner = {"pid": os.getppid(), "host": socket.gethostname(), "start": None}
    assert cache.claim("v1", owner) is None
    result = CliRunner().invoke(main, ["extract", str(videos), "--cache", str(cache.root), "--weights", str(r50_weights_path),
                                       "--crops", "1", "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["claimed"] == 1 and cache.video_ids() == ["v0"]
    assert f"v1: claimed by pid {os.getppid()} on {socket.gethostname()}, left to it" in result.stderr


def test_disk_full_clean_message_no_partial_entry(tmp_path, r50_weights_path, monkeypatch):
    videos = tmp_path / "videos"
    for i in range(3):
        write_lossless(videos / f"v{i}.mp4", pattern_frames(4, 64, 48, seed=i))
    save, calls = np.save, []

    def save_until_full(handle, array, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            handle.write(b"\x93NUMPY" + bytes(100))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return save(handle, array, **kwargs)

    monkeypatch.setattr(np, "save", save_until_full)
    cache = FeatureCache(tmp_path / "cache")
    result = CliRunner().invoke(main, ["extract", str(videos), "--cache", str(cache.root), "--weights", str(r50_weights_path),
                                       "--crops", "1", "--device", "cpu", "-q"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"vad: error: cannot write the features of v1 into {cache.root}: No space left on device; "
        "the 1 video(s) finished in this run are kept, re-run to resume")
    assert cache.video_ids() == ["v0"]
    assert sorted(p.name for p in cache.features_dir.iterdir()) == ["v0.json", "v0.npy"]  # no temporary file, no claim left


def test_written_files_honour_the_umask_not_the_temporary_files_0600(tmp_path):
    """A cache on a shared file system must be readable to other accounts' jobs."""
    import subprocess
    import sys

    script = ("import os, stat, sys; os.umask(0o022); from pathlib import Path; import numpy as np;"
              "from vad.extract.cache import FeatureCache; from vad.files import atomic_write_bytes;"
              "root = Path(sys.argv[1]); atomic_write_bytes(root / 'm.pt', b'x');"
              "FeatureCache(root / 'c').ensure_config({'backbone': 'b', 'feature_dim': 2, 'crops': 1, 'clip_len': 16});"
              "FeatureCache(root / 'c').write('v', np.zeros((1, 1, 2), np.float32), {'n_frames': 16});"
              "print(' '.join(oct(stat.S_IMODE(p.stat().st_mode)) for p in sorted(root.rglob('*')) if p.is_file()))")
    modes = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True).stdout.split()
    assert modes and set(modes) == {"0o644"}
