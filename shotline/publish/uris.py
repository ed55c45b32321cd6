"""Publish destinations by URI: the backend SHOTLINE_PUBLISH_URI names, where a shot's latest.json is, and
the bytes at any published `s3://` or `file://` URI.

Local URIs are `file://` URIs of absolute paths (as `WorkStore`'s); S3 URIs are `s3://bucket/key`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient

from shotline import s3
from shotline.errors import InputError
from shotline.publish.layout import LATEST, Publisher, check_id
from shotline.publish.local import LocalPublisher
from shotline.publish.s3 import S3Publisher


def publisher_for(
    target: str | Path, *, s3_client: BaseClient | None = None, transfer: TransferConfig | None = None
) -> Publisher:
    """The publisher for SHOTLINE_PUBLISH_URI: `s3://bucket/prefix`, a `file://` URI or a local folder."""
    where = _destination(target)
    if isinstance(where, Path):
        return LocalPublisher(where)
    bucket, prefix = where
    return S3Publisher(bucket, prefix, s3_client, transfer=transfer)


def lineage_uri(target: str | Path, storyboard_id: str, shot_id: str) -> str:
    """Where the shot's latest.json is (or will be) published under `target`, without connecting to it: the
    lineage key a finished mp4 carries in its tags."""
    check_id(storyboard_id, storyboard_id, shot_id, "storyboard id")
    check_id(shot_id, storyboard_id, shot_id, "shot id")
    key = f"{storyboard_id}/{shot_id}/{LATEST}"
    where = _destination(target)
    if isinstance(where, Path):
        return (where.expanduser().resolve() / key).as_uri()
    bucket, prefix = where
    return s3.s3_uri(bucket, s3.join_key(prefix, key))


def _destination(target: str | Path) -> Path | tuple[str, str]:
    text = str(target)
    if text.startswith("s3://"):
        try:
            return s3.parse_s3_uri(text, require_key=False)
        except s3.S3UriError as e:
            raise InputError(str(e), field="SHOTLINE_PUBLISH_URI") from e
    if text.startswith("file://"):
        return Path(unquote(urlsplit(text).path))
    if "://" in text:
        raise InputError(
            f"unsupported publish destination {text!r}: use s3://bucket/prefix or a local folder",
            field="SHOTLINE_PUBLISH_URI",
        )
    return Path(text)


def read_uri(uri: str, *, client: BaseClient | None = None) -> bytes | None:
    """The bytes at an `s3://` or `file://` URI, or None when there is nothing there: read by the backend that
    publishes there, so any published URI reads as its publisher reads it."""
    if uri.startswith("s3://"):
        try:
            bucket, key = s3.parse_s3_uri(uri)
        except s3.S3UriError as e:
            raise InputError(str(e)) from e
        return S3Publisher(bucket, "", client).read_bytes(key)
    if uri.startswith("file://"):
        path = Path(unquote(urlsplit(uri).path))
        return LocalPublisher(path.parent).read_bytes(path.name)
    raise InputError(f"cannot read {uri!r}: only s3:// and file:// URIs are supported")
