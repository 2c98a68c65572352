"""INPUT expansion: ids from relative paths, @lists, shards, clear errors."""
from __future__ import annotations

import os

import pytest

from vad.extract.inputs import InputError, discover, in_shard, parse_shard


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_ids_keep_relative_paths_and_never_collide(tmp_path):
    touch(tmp_path / "Abuse/Abuse001_x264.mp4")
    touch(tmp_path / "a/clip.mp4")
    touch(tmp_path / "b/clip.MP4")
    touch(tmp_path / "b/readme.txt")
    ids = [item.video_id for item in discover([str(tmp_path)])]
    assert ids == ["Abuse/Abuse001_x264", "a/clip", "b/clip"]


def test_files_use_their_stem_and_list_files_expand(tmp_path):
    one = touch(tmp_path / "x/one.avi")
    two = touch(tmp_path / "y/two.mkv")
    listing = tmp_path / "videos.txt"
    listing.write_text(f"# comment\n{one}\n\n{two}\n")
    assert [i.video_id for i in discover([f"@{listing}"])] == ["one", "two"]


def test_same_stem_from_two_places_is_refused(tmp_path):
    a = touch(tmp_path / "a/clip.mp4")
    b = touch(tmp_path / "b/clip.mp4")
    with pytest.raises(InputError, match="two videos would get the id 'clip'"):
        discover([str(a), str(b)])


def test_missing_input_and_list_line_are_named(tmp_path):
    with pytest.raises(InputError, match="nothing.mp4: no such file"):
        discover([str(tmp_path / "nothing.mp4")])
    listing = tmp_path / "l.txt"
    listing.write_text("missing.mp4\n")
    with pytest.raises(InputError, match=r"l\.txt:1: missing\.mp4"):
        discover([f"@{listing}"])


def test_symlink_loop_does_not_hang(tmp_path):
    touch(tmp_path / "v/a.mp4")
    os.symlink(tmp_path / "v", tmp_path / "v/loop")
    assert [i.video_id for i in discover([str(tmp_path / "v")])] == ["a"]


def test_shards_partition_the_ids():
    ids = [f"video_{i}" for i in range(200)]
    shards = [[v for v in ids if in_shard(v, (i, 3))] for i in range(3)]
    assert sorted(sum(shards, [])) == sorted(ids)
    assert all(40 < len(s) < 95 for s in shards)
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "a/b", "1"):
        with pytest.raises(InputError, match="--shard"):
            parse_shard(bad)
