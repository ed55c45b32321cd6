"""Storyboards read from S3 (the local S3 server) through immutable local snapshots: one sync per resource
instance, switched atomically, consistent under concurrent syncs."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from assets.resources import WorkspaceResource
from shotline.storyboard import load_storyboard
from shotline.storyboard_source import (
    LISTING_FILE,
    StoryboardSourceError,
    _build,
    _Changed,
    list_location,
    local_storyboards_root,
    snapshots_base,
    sync_s3_storyboards,
)
from testkit.fakes.s3_server import S3Env
from testkit.storyboard_factory import tiny_storyboard

PREFIX = "boards"


def upload_folder(s3_env: S3Env, folder: Path, prefix: str = PREFIX) -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(folder).as_posix()}"
        s3_env.client.put_object(Bucket=s3_env.bucket, Key=key, Body=path.read_bytes())


def set_title(s3_env: S3Env, title: str, storyboard_id: str = "tiny") -> None:
    key = f"{PREFIX}/{storyboard_id}/storyboard.yaml"
    data = yaml.safe_load(s3_env.client.get_object(Bucket=s3_env.bucket, Key=key)["Body"].read())
    data["title"] = title
    s3_env.client.put_object(Bucket=s3_env.bucket, Key=key, Body=yaml.safe_dump(data).encode())


def snapshots(base: Path) -> list[Path]:
    return sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("snap-"))


def leftovers(base: Path) -> list[Path]:
    return [p for p in base.iterdir() if p.name.startswith((".tmp-", ".trash-"))]


@pytest.fixture
def boards(s3_env: S3Env, tmp_path: Path) -> str:
    """Two storyboards under s3://<bucket>/boards/; returns that URI."""
    local = tmp_path / "boards-src"
    tiny_storyboard(local, "tiny")
    tiny_storyboard(local, "other", n_shots=1)
    upload_folder(s3_env, local)
    return s3_env.uri(PREFIX)


def test_a_local_location_is_used_as_it_is(tmp_path: Path) -> None:
    assert local_storyboards_root(str(tmp_path / "boards"), tmp_path / "home") == tmp_path / "boards"
    assert not (tmp_path / "home").exists()


def test_the_snapshot_holds_the_prefix_and_is_named_by_its_listing(boards: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    root = local_storyboards_root(boards, home)
    assert root.parent == snapshots_base(boards, home) and root.name.startswith("snap-")
    assert load_storyboard(root / "tiny").title == "Tiny" and len(load_storyboard(root / "other").shots) == 1
    assert (root / "tiny" / "images" / "s01.png").is_file() and (root / LISTING_FILE).is_file()
    assert local_storyboards_root(boards, home) == root  # same listing, same snapshot
    assert snapshots(root.parent) == [root] and leftovers(root.parent) == []


def test_a_change_makes_a_new_snapshot_and_leaves_the_old_one_whole(s3_env: S3Env, boards: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    before = local_storyboards_root(boards, home)
    set_title(s3_env, "Retitled")
    s3_env.client.delete_object(Bucket=s3_env.bucket, Key=f"{PREFIX}/other/storyboard.yaml")
    after = local_storyboards_root(boards, home)

    assert after != before
    assert load_storyboard(after / "tiny").title == "Retitled" and not (after / "other" / "storyboard.yaml").exists()
    # a run still reading the old snapshot sees it exactly as it was
    assert load_storyboard(before / "tiny").title == "Tiny" and (before / "other" / "storyboard.yaml").is_file()
    # an unchanged file is shared with the earlier snapshot, not downloaded again
    image = Path("tiny", "images", "s01.png")
    assert os.stat(after / image).st_ino == os.stat(before / image).st_ino


def test_old_snapshots_are_pruned_beyond_the_newest_few(s3_env: S3Env, boards: str, tmp_path: Path) -> None:
    base = tmp_path / "snaps"
    seen = []
    for n in range(4):
        set_title(s3_env, f"Take {n}")
        seen.append(sync_s3_storyboards(boards, base, keep=2, min_age_s=0))
        os.utime(seen[-1], (1_000_000 + n, 1_000_000 + n))  # an order the filesystem clock cannot blur
    assert snapshots(base) == sorted(seen[-2:]) and leftovers(base) == []
    # a snapshot a sync chose recently is kept whatever its rank
    for recent in seen[-2:]:
        os.utime(recent)
    set_title(s3_env, "Take 4")
    sync_s3_storyboards(boards, base, keep=1, min_age_s=3600)
    assert len(snapshots(base)) == 3


def test_the_workspace_lists_once_per_resource_instance(s3_env: S3Env, boards: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    workspace = WorkspaceResource(storyboards=boards, home=str(home))
    first = workspace.storyboard("tiny")
    set_title(s3_env, "Changed mid-run")
    # every read in the same run (or sensor tick) sees the snapshot it started with
    assert workspace.storyboard("tiny").title == "Tiny"
    assert workspace.shot("tiny__s01")[0].folder == first.folder
    assert workspace.storyboards_root() == first.folder.parent
    assert len(snapshots(snapshots_base(boards, home))) == 1  # nothing was listed or synced again

    fresh = WorkspaceResource(storyboards=boards, home=str(home))  # the next run or tick
    assert fresh.storyboard("tiny").title == "Changed mid-run"
    assert workspace.storyboard("tiny").title == "Tiny"


def test_an_object_replaced_after_the_listing_is_not_mixed_in(s3_env: S3Env, boards: str, tmp_path: Path) -> None:
    from shotline.s3 import s3_client

    client = s3_client()
    listing = list_location(client, s3_env.bucket, f"{PREFIX}/", boards)
    set_title(s3_env, "Replaced during the sync")
    base = tmp_path / "snaps"
    with pytest.raises(_Changed):
        _build(client, s3_env.bucket, listing, base, base / "snap-stale", boards)
    assert not (base / "snap-stale").exists() and leftovers(base) == []
    # a sync starts over from a fresh listing
    assert load_storyboard(sync_s3_storyboards(boards, base) / "tiny").title == "Replaced during the sync"


def test_concurrent_syncs_in_threads_end_in_one_snapshot(boards: str, tmp_path: Path) -> None:
    base = tmp_path / "snaps"
    start = threading.Barrier(6)
    results: list[Path] = []
    errors: list[BaseException] = []

    def sync() -> None:
        start.wait()
        try:
            results.append(sync_s3_storyboards(boards, base))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=sync) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(results)) == 1
    assert snapshots(base) == [results[0]] and leftovers(base) == []
    assert load_storyboard(results[0] / "tiny").title == "Tiny"


def _sync_in_child(uri: str, base: str, barrier: Any, out: Any) -> None:
    barrier.wait()
    out.put(str(sync_s3_storyboards(uri, Path(base))))


def test_concurrent_syncs_in_processes_end_in_one_snapshot(boards: str, tmp_path: Path) -> None:
    base = tmp_path / "snaps"
    ctx = multiprocessing.get_context("spawn")  # the children inherit the S3 server's environment
    barrier, out = ctx.Barrier(3), ctx.Queue()
    children = [ctx.Process(target=_sync_in_child, args=(boards, str(base), barrier, out)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    assert [child.exitcode for child in children] == [0, 0, 0]
    paths = {out.get(timeout=5) for _ in children}
    assert len(paths) == 1 and snapshots(base) == [Path(paths.pop())] and leftovers(base) == []
    assert len(load_storyboard(snapshots(base)[0] / "tiny").shots) == 2


def test_a_missing_bucket_names_the_variable(s3_env: S3Env, tmp_path: Path) -> None:
    with pytest.raises(StoryboardSourceError, match=r"SHOTLINE_STORYBOARDS=s3://no-such-bucket-here/x.*NoSuchBucket"):
        local_storyboards_root("s3://no-such-bucket-here/x", tmp_path / "home")
    with pytest.raises(StoryboardSourceError, match="SHOTLINE_STORYBOARDS"):
        local_storyboards_root("s3://Bad_Bucket/x", tmp_path / "home")
