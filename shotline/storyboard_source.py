"""Where storyboards live: a local folder, or `s3://bucket/prefix` mirrored into the working store.

The S3 mirror downloads only objects whose ETag changed and removes local files whose object is gone, so a
storyboard folder is read the same way wherever it came from.
"""

from __future__ import annotations

import json
from pathlib import Path

from shotline.fsutil import atomic_path, atomic_write_text
from shotline.hashing import stable_hash


def local_storyboards_root(location: str, home: Path) -> Path:
    if not location.startswith("s3://"):
        return Path(location)
    return sync_s3_storyboards(location, home / "storyboards-mirror" / stable_hash(location)[:12])


def sync_s3_storyboards(uri: str, dest: Path) -> Path:
    from shotline.s3 import parse_s3_uri, s3_client

    bucket, prefix = parse_s3_uri(uri, require_key=False)
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    client = s3_client()
    index_path = dest / ".etags.json"
    etags: dict[str, str] = json.loads(index_path.read_text()) if index_path.is_file() else {}
    seen: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) :]
            if not rel or rel.endswith("/") or ".." in Path(rel).parts:
                continue
            seen[rel] = obj["ETag"]
            target = dest / rel
            if etags.get(rel) == obj["ETag"] and target.is_file():
                continue
            with atomic_path(target) as tmp:
                client.download_file(bucket, obj["Key"], str(tmp))
    for rel in set(etags) - set(seen):
        (dest / rel).unlink(missing_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_text(index_path, json.dumps(seen, sort_keys=True))
    return dest
