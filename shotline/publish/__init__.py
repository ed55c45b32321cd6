"""Publish clips and reels, with thumbnail and lineage manifest, to a local folder or an S3 prefix.

- `layout`: the published layout and the `Publisher` that writes it;
- `local`, `s3`: its two backends;
- `verify`: checking what was published;
- `uris`: the destination a URI names, a shot's lineage URI, reading any published URI.
"""

from shotline.publish.layout import (
    CONTENT_TYPES,
    IMMUTABLE,
    LATEST,
    NO_CACHE,
    REEL,
    Manifest,
    OnExists,
    PublishedClip,
    PublishedMedia,
    PublishedObject,
    Publisher,
)
from shotline.publish.local import LocalPublisher
from shotline.publish.s3 import DEFAULT_URL_EXPIRES_S, S3Publisher
from shotline.publish.uris import lineage_uri, publisher_for, read_uri
from shotline.publish.verify import ObjectCheck, verify_published

__all__ = [
    "CONTENT_TYPES",
    "DEFAULT_URL_EXPIRES_S",
    "IMMUTABLE",
    "LATEST",
    "NO_CACHE",
    "REEL",
    "LocalPublisher",
    "Manifest",
    "ObjectCheck",
    "OnExists",
    "PublishedClip",
    "PublishedMedia",
    "PublishedObject",
    "Publisher",
    "S3Publisher",
    "lineage_uri",
    "publisher_for",
    "read_uri",
    "verify_published",
]
