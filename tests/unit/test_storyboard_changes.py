"""Which storyboards changed, from their files' sizes and times: an edit of the storyboard file, a file added,
removed or overwritten in place; nothing for a folder copied as hard links (an S3 snapshot); a file too fresh
to trust; a large catalogue's files swept in turn within a budget per look."""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path

from shotline.storyboard_changes import Changes, look
from testkit.storyboard_factory import tiny_storyboard, write_image


def later() -> float:
    """A look's time at which every file is settled (taken when asked: the suite may import this module
    minutes before it runs a test)."""
    return time.time() + 60


def date(root: Path, ago_s: float) -> None:
    stamp = time.time() - ago_s
    for path in [root, *root.rglob("*")]:
        os.utime(path, (stamp, stamp))


def overwrite(image: Path) -> None:
    """New bytes under the same name, as `cp` does: the file's time changes, no folder's does."""
    folder_time = image.parent.stat().st_mtime_ns
    write_image(image, colour=(250, 0, 0))
    stamp = time.time() - 50
    os.utime(image, (stamp, stamp))
    assert image.parent.stat().st_mtime_ns == folder_time


def again(root: Path, before: Changes, **options) -> Changes:
    return look(root, before.boards, sweep_from=before.sweep_next, now=later(), **options)


def test_edits_additions_removals_and_overwrites_are_changes(tmp_path: Path) -> None:
    root = tmp_path / "storyboards"
    alpha, beta = tiny_storyboard(root, "alpha"), tiny_storyboard(root, "beta")
    date(root, 100)
    first = look(root, {}, now=later())
    assert sorted(first.changed) == ["alpha", "beta"] and first.removed == []
    assert again(root, first).changed == []

    (alpha / "storyboard.yaml").write_text((alpha / "storyboard.yaml").read_text() + "\n")
    edited = again(root, first)
    assert edited.changed == ["alpha"]

    overwrite(beta / "images" / "s01.png")
    overwritten = again(root, edited)
    assert overwritten.changed == ["beta"]

    (alpha / "images" / "extra.png").write_bytes(b"not referenced, still a file of the storyboard")
    added = again(root, overwritten)
    assert added.changed == ["alpha"]

    shutil.rmtree(beta)
    gone = again(root, added)
    assert gone.removed == ["beta"] and "beta" not in gone.boards


def test_a_hard_linked_copy_is_no_change(tmp_path: Path) -> None:
    """An S3 snapshot: new folders, unchanged objects hard-linked to the previous snapshot's files."""
    old, new = tmp_path / "snap-1", tmp_path / "snap-2"
    tiny_storyboard(old, "alpha")
    date(old, 100)
    first = look(old, {}, now=later())
    shutil.copytree(old, new, copy_function=os.link)
    assert look(new, first.boards, now=later()).changed == []


def test_a_file_written_just_now_is_not_trusted_yet(tmp_path: Path) -> None:
    root = tmp_path / "storyboards"
    tiny_storyboard(root, "alpha")
    now = time.time()
    first = look(root, {}, now=now)
    assert first.changed == ["alpha"] and first.boards["alpha"].fingerprint is None
    assert look(root, first.boards, now=now).changed == ["alpha"]  # read again until it settles
    settled = look(root, first.boards, now=now + 10)
    assert settled.changed == ["alpha"] and settled.boards["alpha"].fingerprint is not None
    assert look(root, settled.boards, now=now + 20).changed == []


def test_a_large_catalogue_is_swept_in_turn(tmp_path: Path) -> None:
    root = tmp_path / "storyboards"
    folders = [tiny_storyboard(root, f"sb{i:02d}", n_shots=2) for i in range(10)]
    date(root, 100)
    budget = 6  # files per look; each storyboard has 3 (its file and two images)
    state = look(root, {}, now=later(), sweep_files=budget)
    overwrite(folders[7] / "images" / "s01.png")
    (folders[2] / "storyboard.yaml").write_text((folders[2] / "storyboard.yaml").read_text() + "\n")
    state = again(root, state, sweep_files=budget)
    assert "sb02" in state.changed  # an edit of the storyboard file is seen at once
    looks = 1
    while "sb07" not in state.changed:
        state = again(root, state, sweep_files=budget)
        looks += 1
        assert looks <= math.ceil(30 / budget) + 1, "the overwritten image was never noticed"
    assert again(root, state, sweep_files=budget).changed == []
