"""Where storyboards live: a local folder, or `s3://bucket/prefix` read through local snapshots.

An S3 location is read as an immutable snapshot under `<home>/storyboards-snapshots/<hash of location>/`:
a folder `snap-<id>` whose id is the hash of the listing (every key with its ETag). A sync lists the
prefix; when the snapshot of that listing exists it is used as it is, otherwise it is built in a temp folder
and renamed into place. So a reader never sees half a snapshot, and two syncs of the same listing end with
one folder (the loser of the rename discards its copy). Files whose ETag did not change are hard-linked from
the newest earlier snapshot instead of downloaded again. Every download is pinned to the listed ETag
(If-Match): an object replaced mid-sync makes the sync start over from a fresh listing.

Old snapshots are removed once they are neither among the newest few nor chosen by a sync for a while
(a run that started on one keeps reading it). A sync is meant to happen once per run or sensor tick:
`assets.resources.WorkspaceResource` keeps the path it got for the life of the resource instance.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shotline.errors import ShotlineError
from shotline.hashing import stable_hash

if TYPE_CHECKING:
    from botocore.client import BaseClient

VARIABLE = "SHOTLINE_STORYBOARDS"
SNAPSHOTS_DIR = "storyboards-snapshots"
SNAPSHOT_PREFIX = "snap-"
LISTING_FILE = ".listing.json"  # in every snapshot: what it was built from
KEEP_SNAPSHOTS = 3
# an older snapshot is kept this long after a sync last chose it: runs that started on it may still read it
MIN_SNAPSHOT_AGE_S = 6 * 3600.0
# temp and trash folders untouched this long were left by a process that died
STALE_S = 3600.0
SYNC_ATTEMPTS = 3
_CHUNK = 1 << 20


class StoryboardSourceError(ShotlineError):
    """The storyboards location cannot be read; the message names SHOTLINE_STORYBOARDS."""


@dataclass(frozen=True)
class ListedObject:
    key: str
    etag: str
    size: int


Listing = dict[str, ListedObject]  # path inside the location -> object


def local_storyboards_root(location: str, home: Path) -> Path:
    """The folder holding the storyboards: `location` itself, or the current snapshot of an s3:// one."""
    if not location.startswith("s3://"):
        return Path(location)
    return sync_s3_storyboards(location, snapshots_base(location, home))


def snapshots_base(location: str, home: Path) -> Path:
    return home / SNAPSHOTS_DIR / stable_hash(location)[:12]


def sync_s3_storyboards(
    uri: str,
    base: Path,
    *,
    client: BaseClient | None = None,
    keep: int = KEEP_SNAPSHOTS,
    min_age_s: float = MIN_SNAPSHOT_AGE_S,
) -> Path:
    """The snapshot folder of what `uri` holds now (built if need be); older ones pruned."""
    from shotline.s3 import S3UriError, parse_s3_uri, s3_client

    try:
        bucket, prefix = parse_s3_uri(uri, require_key=False)
    except S3UriError as e:
        raise StoryboardSourceError(f"{VARIABLE}: {e}") from None
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    client = client or s3_client()
    for _ in range(SYNC_ATTEMPTS):
        listing = list_location(client, bucket, prefix, uri)
        target = base / f"{SNAPSHOT_PREFIX}{snapshot_id(listing)}"
        if not _choose(base, target):
            try:
                _build(client, bucket, listing, base, target, uri)
            except _Changed:
                continue
            _choose(base, target)
        prune_snapshots(base, current=target, keep=keep, min_age_s=min_age_s)
        return target
    raise StoryboardSourceError(
        f"{VARIABLE}={uri}: objects kept changing during {SYNC_ATTEMPTS} syncs in a row; try again"
    )


def snapshot_id(listing: Listing) -> str:
    return stable_hash(sorted((rel, obj.etag) for rel, obj in listing.items()))[:16]


def list_location(client: BaseClient, bucket: str, prefix: str, uri: str) -> Listing:
    """Every object under `prefix` that maps to a file inside the snapshot (folder markers and paths
    leaving the folder are skipped)."""
    listing: Listing = {}
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix) :]
                if _usable(rel):
                    listing[rel] = ListedObject(obj["Key"], obj["ETag"], int(obj.get("Size", 0)))
    except Exception as e:
        raise StoryboardSourceError(f"{VARIABLE}={uri}: cannot list it: {_describe(e)}") from None
    return listing


def prune_snapshots(
    base: Path, *, current: Path, keep: int = KEEP_SNAPSHOTS, min_age_s: float = MIN_SNAPSHOT_AGE_S
) -> None:
    """Remove snapshots beyond the newest `keep` that no sync chose for `min_age_s`, and dead temp folders.
    A snapshot is renamed away before it is deleted, so its name never points at half a folder."""
    now = time.time()
    with _lock(base, fcntl.LOCK_EX):
        snapshots = sorted(_snapshots(base), key=_mtime, reverse=True)
        for old in snapshots[keep:]:
            if old != current and now - _mtime(old) >= min_age_s:
                _discard(old, base)
    for leftover in [*base.glob(".tmp-*"), *base.glob(".trash-*")]:
        if now - _mtime(leftover) >= STALE_S:
            shutil.rmtree(leftover, ignore_errors=True)


# --- building a snapshot --------------------------------------------------------------------------------


class _Changed(Exception):
    """An object changed (or went away) between the listing and its download."""


def _build(client: BaseClient, bucket: str, listing: Listing, base: Path, target: Path, uri: str) -> None:
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{target.name}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        previous = _newest_listing(base)
        for rel, obj in sorted(listing.items()):
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            earlier = previous.get(rel)
            if earlier is not None and earlier[1] == obj.etag and _link(earlier[0], dest):
                continue
            _download(client, bucket, obj, dest, uri)
        manifest = {rel: {"key": o.key, "etag": o.etag, "size": o.size} for rel, o in listing.items()}
        (tmp / LISTING_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        with _lock(base, fcntl.LOCK_SH):
            try:
                os.rename(tmp, target)
            except OSError:
                if not (target / LISTING_FILE).is_file():
                    raise
                # another sync of the same listing renamed its copy first: same content, keep theirs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _download(client: BaseClient, bucket: str, obj: ListedObject, dest: Path, uri: str) -> None:
    from botocore.exceptions import ClientError

    from shotline.s3 import error_code

    try:
        body = client.get_object(Bucket=bucket, Key=obj.key, IfMatch=obj.etag)["Body"]
        size = 0
        with open(dest, "wb") as f:
            for chunk in body.iter_chunks(_CHUNK):
                f.write(chunk)
                size += len(chunk)
    except ClientError as e:
        if error_code(e) in ("412", "PreconditionFailed", "404", "NoSuchKey"):
            raise _Changed from None
        raise StoryboardSourceError(f"{VARIABLE}={uri}: cannot read {obj.key}: {_describe(e)}") from None
    except Exception as e:
        raise StoryboardSourceError(f"{VARIABLE}={uri}: cannot read {obj.key}: {_describe(e)}") from None
    if size != obj.size:
        raise _Changed


def _newest_listing(base: Path) -> dict[str, tuple[Path, str]]:
    """The files of the newest complete snapshot, by path inside it: (file, ETag)."""
    for snap in sorted(_snapshots(base), key=_mtime, reverse=True):
        try:
            manifest = json.loads((snap / LISTING_FILE).read_text())
        except (OSError, ValueError):
            continue
        return {rel: (snap / rel, str(entry["etag"])) for rel, entry in manifest.items()}
    return {}


def _link(src: Path, dest: Path) -> bool:
    """Share an unchanged file with the earlier snapshot (both are immutable); False if it is gone."""
    try:
        os.link(src, dest)
    except FileNotFoundError:
        return False
    except OSError:
        try:
            shutil.copyfile(src, dest)
        except OSError:
            return False
    return True


# --- choosing and pruning -------------------------------------------------------------------------------


def _choose(base: Path, target: Path) -> bool:
    """Mark `target` as just chosen if it exists (under the lock pruning takes, so it is not pruned now)."""
    with _lock(base, fcntl.LOCK_SH):
        if not (target / LISTING_FILE).is_file():
            return False
        os.utime(target)
    return True


def _snapshots(base: Path) -> list[Path]:
    return [p for p in base.glob(f"{SNAPSHOT_PREFIX}*") if p.is_dir()]


def _discard(folder: Path, base: Path) -> None:
    trash = base / f".trash-{folder.name}-{secrets.token_hex(4)}"
    try:
        os.rename(folder, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


@contextlib.contextmanager
def _lock(base: Path, mode: int) -> Iterator[None]:
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), mode)
        yield


def _usable(rel: str) -> bool:
    parts = Path(rel).parts
    return bool(rel) and not rel.endswith("/") and not rel.startswith("/") and ".." not in parts and rel != LISTING_FILE


def _describe(e: Exception) -> str:
    from shotline.s3 import describe_error

    return describe_error(e)
