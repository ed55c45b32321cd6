"""Publish clips and reels, with thumbnail and lineage manifest, to a local folder or an S3 prefix.

Layout under the destination (SHOTLINE_PUBLISH_URI), content-addressed by the video's sha256:

    <storyboard_id>/<shot_id>/<sha12>.mp4     the deliverable (sha12 = first 12 hex of its sha256)
    <storyboard_id>/<shot_id>/<sha12>.jpg     its thumbnail
    <storyboard_id>/<shot_id>/<sha12>.json    its lineage manifest
    <storyboard_id>/<shot_id>/latest.json     pointer to the newest (the shot's current take: every take
                                              stays published); the only object ever rewritten
    <storyboard_id>/reel/...                  the same for the storyboard's reel

Objects are written in that order and latest.json last, so a reader following latest.json never meets a
missing or half-written file. Content-addressed objects are never overwritten: a video already there with
the same bytes is skipped; with other bytes (a 48-bit prefix clash) it is an error. A thumbnail or
manifest already there for that video is kept as is, so a video's manifest records its first publication.

Two steps let the manifest carry the published URIs and checksums of the media it describes:

    media = publisher.put_media(storyboard_id, shot_id, video, thumbnail)
    clip = publisher.put_manifest(media, build_manifest(media.manifest_section()))

or in one call, `publish_clip(..., manifest=lambda media: {...})`.

Beside them, per storyboard, documents that describe the storyboard as a whole and are rewritten as it
changes (`put_document`: skipped when identical, written atomically): `<storyboard_id>/ledger.csv|json`, and
content-addressed files such as the contact sheet (`put_file`: never overwritten).

`verify_object` checks that a published object is there with the right size and sha256: on S3 with a HEAD
in checksum mode (a multipart object's composite checksum, or none, falls back to reading it back and
hashing), locally by reading it back.

Local URIs are `file://` URIs of absolute paths (as `WorkStore`'s); S3 URIs are `s3://bucket/key`.
"""

from __future__ import annotations

import json
import re
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient
from pydantic import BaseModel, ConfigDict

from shotline import s3
from shotline.errors import InputError, MediaError, PublishError
from shotline.fsutil import atomic_path
from shotline.hashing import sha256_bytes, sha256_file
from shotline.manifest import LatestFiles, LatestPointer

REEL = "reel"
LATEST = "latest.json"
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
DEFAULT_URL_EXPIRES_S = 7 * 24 * 3600  # SigV4's maximum; these links are for people opening the Dagster UI
CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".json": "application/json",
    ".csv": "text/csv; charset=utf-8",
}

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")

# "same": skip if identical, refuse if different. "keep": whatever is there stays. "replace": latest.json.
# "update": skip if identical, replace if different (documents that follow the storyboard, like the ledger).
OnExists = Literal["same", "keep", "replace", "update"]


class PublishedObject(BaseModel):
    model_config = ConfigDict(frozen=True)

    uri: str
    key: str  # relative to the destination root, e.g. "harbor-teaser/s01-boats/0123456789ab.mp4"
    sha256: str
    size: int
    content_type: str
    skipped: bool = False  # it was already there and was not written again
    url: str | None = None  # presigned GET (S3 only)
    url_expires_at: datetime | None = None

    def without_link(self) -> PublishedObject:
        """The object as recorded for later: its presigned link expires, so it is left out."""
        return self.model_copy(update={"url": None, "url_expires_at": None})


class PublishedMedia(BaseModel):
    """The video (and thumbnail) in place; the manifest and latest.json not yet written."""

    model_config = ConfigDict(frozen=True)

    storyboard_id: str
    shot_id: str  # "reel" for a storyboard's reel
    sha256: str  # of the video
    sha12: str
    video: PublishedObject
    thumbnail: PublishedObject | None
    manifest_uri: str  # where put_manifest will write the manifest
    latest_uri: str
    url_expires_at: datetime | None = None  # of the presigned URLs (S3 only)
    generator: str | None = None

    @property
    def video_uri(self) -> str:
        return self.video.uri

    @property
    def thumbnail_uri(self) -> str | None:
        return self.thumbnail.uri if self.thumbnail else None

    @property
    def url(self) -> str | None:
        return self.video.url

    def manifest_section(self) -> dict[str, Any]:
        """The `published` part of a lineage manifest (shotline.manifest.PublishedLineage's shape): URIs,
        sizes and checksums. No expiring URLs, and no latest.json, which is a pointer, not lineage."""

        def entry(o: PublishedObject | None) -> dict[str, Any] | None:
            return None if o is None else {"uri": o.uri, "sha256": o.sha256, "size": o.size}

        return {
            "video": entry(self.video),
            "thumbnail": entry(self.thumbnail),
            "manifest_uri": self.manifest_uri,
        }


class PublishedClip(PublishedMedia):
    """Everything published: media, manifest and the latest.json pointer."""

    manifest: PublishedObject
    latest: PublishedObject
    published_at: datetime

    @property
    def thumbnail_url(self) -> str | None:
        return self.thumbnail.url if self.thumbnail else None

    def without_links(self) -> PublishedClip:
        """What was published, as recorded for later: the presigned links expire, so they are left out."""
        return self.model_copy(
            update={
                "video": self.video.without_link(),
                "thumbnail": self.thumbnail.without_link() if self.thumbnail else None,
                "manifest": self.manifest.without_link(),
                "latest": self.latest.without_link(),
                "url_expires_at": None,
            }
        )

    def metadata(self) -> dict[str, str | int | None]:
        """Flat values for materialization metadata (`uri`, `sha256`, `manifest_uri`, `url`...): every
        object's URI, size and sha256, which is what the published_clip check verifies."""
        return {
            "uri": self.video.uri,
            "sha256": self.sha256,
            "size": self.video.size,
            "thumbnail_uri": self.thumbnail_uri,
            "thumbnail_sha256": self.thumbnail.sha256 if self.thumbnail else None,
            "thumbnail_size": self.thumbnail.size if self.thumbnail else None,
            "manifest_uri": self.manifest.uri,
            "manifest_sha256": self.manifest.sha256,
            "manifest_size": self.manifest.size,
            "latest_uri": self.latest.uri,
            "url": self.url,
            "thumbnail_url": self.thumbnail_url,
            "url_expires_at": self.url_expires_at.isoformat() if self.url_expires_at else None,
        }


class ObjectCheck(BaseModel):
    """What `verify_object` found: `problem` is None when the object is there with the expected bytes."""

    model_config = ConfigDict(frozen=True)

    uri: str
    size: int | None  # found; None if missing
    sha256: str | None  # found, when it was computed or reported
    method: str  # how it was checked: "checksum" (S3 HEAD), "read back"
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


# A manifest, or a function that builds it once the media's URIs and checksums are known.
Manifest = Mapping[str, Any] | Callable[[PublishedMedia], Mapping[str, Any]]


class Publisher(ABC):
    """Writes the published layout; subclasses only know how to put and read one object."""

    @property
    @abstractmethod
    def root_uri(self) -> str: ...

    @abstractmethod
    def uri_for(self, key: str) -> str: ...

    @abstractmethod
    def read_bytes(self, key: str) -> bytes | None:
        """The object at `key`, or None if there is none."""

    @abstractmethod
    def _put_file(
        self, path: Path, key: str, *, content_type: str, on_exists: OnExists, metadata: dict[str, str | None]
    ) -> PublishedObject: ...

    @abstractmethod
    def _put_bytes(
        self,
        data: bytes,
        key: str,
        *,
        content_type: str,
        on_exists: OnExists,
        metadata: dict[str, str | None],
    ) -> PublishedObject: ...

    @abstractmethod
    def verify_object(self, key: str, sha256: str, size: int) -> ObjectCheck:
        """Is the object at `key` there, `size` bytes long, with this sha256?"""

    def _presign(self, obj: PublishedObject) -> PublishedObject:
        """The object with a time-limited GET link and its expiry, where the destination has such links."""
        return obj

    def key_for(self, uri: str) -> str:
        """The key under this destination of a URI it published; PublishError if the URI is elsewhere."""
        root = self.root_uri.rstrip("/") + "/"
        if not uri.startswith(root):
            raise PublishError(f"{uri} is not under the publish destination {self.root_uri}")
        return unquote(uri[len(root) :]) if root.startswith("file://") else uri[len(root) :]

    def latest_uri(self, storyboard_id: str, shot_id: str) -> str:
        return self.uri_for(f"{storyboard_id}/{shot_id}/{LATEST}")

    def put_document(
        self, storyboard_id: str, name: str, data: bytes, *, content_type: str | None = None
    ) -> PublishedObject:
        """A storyboard-level document (`<storyboard_id>/<name>`, e.g. ledger.csv) that follows the storyboard:
        rewritten when its content changes (atomically), skipped when identical, never cached by readers."""
        _check_id(storyboard_id, storyboard_id, "", "storyboard id")
        if "/" in name or "." not in name or _SLUG.match(name.split(".", 1)[0]) is None:
            raise ValueError(f"document name {name!r} must be <slug>.<ext>, with no '/'")
        suffix = "." + name.rsplit(".", 1)[1]
        obj = self._put_bytes(
            data,
            f"{storyboard_id}/{name}",
            content_type=content_type or CONTENT_TYPES.get(suffix, "application/octet-stream"),
            on_exists="update",
            metadata={"storyboard": storyboard_id, "sha256": sha256_bytes(data)},
        )
        return self._presign(obj)

    def put_file(self, storyboard_id: str, key: str, path: Path, *, content_type: str) -> PublishedObject:
        """A content-addressed file under `<storyboard_id>/` (its name should hold its hash): skipped when the
        same bytes are there, never overwritten with others. Presigned when the destination can."""
        _check_id(storyboard_id, storyboard_id, "", "storyboard id")
        if not key.startswith(f"{storyboard_id}/") or ".." in key.split("/"):
            raise ValueError(f"{key!r} is not under {storyboard_id}/")
        obj = self._put_file(
            Path(path),
            key,
            content_type=content_type,
            on_exists="same",
            metadata={"storyboard": storyboard_id, "sha256": sha256_file(path)},
        )
        return self._presign(obj)

    # --- the layout -----------------------------------------------------------------------------------

    def put_media(
        self,
        storyboard_id: str,
        shot_id: str,
        video: Path,
        thumbnail: Path | None = None,
        *,
        generator: str | None = None,
    ) -> PublishedMedia:
        """Step one: put the video, then its thumbnail. Nothing points at them yet."""
        _check_id(storyboard_id, storyboard_id, shot_id, "storyboard id")
        _check_id(shot_id, storyboard_id, shot_id, "shot id")
        video = _check_file(video, (".mp4",), "video")
        if thumbnail is not None:
            thumbnail = _check_file(thumbnail, (".jpg", ".jpeg"), "thumbnail")
        sha = sha256_file(video)
        stem = f"{storyboard_id}/{shot_id}/{sha[:12]}"
        base_meta = {"storyboard": storyboard_id, "shot": shot_id, "generator": generator}

        vobj = self._put_file(
            video,
            f"{stem}.mp4",
            content_type=CONTENT_TYPES[".mp4"],
            on_exists="same",
            metadata={**base_meta, "sha256": sha},
        )
        tobj = None
        if thumbnail is not None:
            tobj = self._put_file(
                thumbnail,
                f"{stem}.jpg",
                content_type=CONTENT_TYPES[".jpg"],
                on_exists="keep",
                metadata={**base_meta, "sha256": sha256_file(thumbnail), "video-sha256": sha},
            )
        vobj = self._presign(vobj)
        if tobj is not None:
            tobj = self._presign(tobj)
        return PublishedMedia(
            storyboard_id=storyboard_id,
            shot_id=shot_id,
            sha256=sha,
            sha12=sha[:12],
            video=vobj,
            thumbnail=tobj,
            manifest_uri=self.uri_for(f"{stem}.json"),
            latest_uri=self.uri_for(f"{storyboard_id}/{shot_id}/{LATEST}"),
            url_expires_at=vobj.url_expires_at,
            generator=generator,
        )

    def put_manifest(
        self, media: PublishedMedia, manifest: Mapping[str, Any], *, take: int | None = None
    ) -> PublishedClip:
        """Step two: put the manifest (kept if one is already there for this video), then latest.json, which
        names the clip's `take` (every take stays published; latest.json points at the current one)."""
        if not isinstance(manifest, Mapping):
            raise TypeError(f"a manifest must be a mapping, not {type(manifest).__name__}")
        folder = f"{media.storyboard_id}/{media.shot_id}"
        meta = {"storyboard": media.storyboard_id, "shot": media.shot_id, "video-sha256": media.sha256}
        body = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode()
        mobj = self._put_bytes(
            body,
            f"{folder}/{media.sha12}.json",
            content_type=CONTENT_TYPES[".json"],
            on_exists="keep",
            metadata={**meta, "sha256": sha256_bytes(body), "generator": media.generator},
        )

        published_at = datetime.now(UTC)
        latest_doc = LatestPointer(
            storyboard_id=media.storyboard_id,
            shot_id=media.shot_id,
            take=take,
            sha256=media.sha256,
            size=media.video.size,
            video=media.video.uri,
            thumbnail=media.thumbnail_uri,
            manifest=mobj.uri,
            thumbnail_sha256=media.thumbnail.sha256 if media.thumbnail else None,
            manifest_sha256=mobj.sha256,
            files=LatestFiles(
                video=media.video.key.rsplit("/", 1)[1],
                thumbnail=media.thumbnail.key.rsplit("/", 1)[1] if media.thumbnail else None,
                manifest=mobj.key.rsplit("/", 1)[1],
            ),
            published_at=published_at.isoformat(),
            generator=media.generator,
        ).model_dump(mode="json")
        latest_body = (json.dumps(latest_doc, indent=2, sort_keys=True) + "\n").encode()
        lobj = self._put_bytes(
            latest_body,
            f"{folder}/{LATEST}",
            content_type=CONTENT_TYPES[".json"],
            on_exists="replace",
            metadata={**meta, "sha256": sha256_bytes(latest_body)},
        )
        return PublishedClip(
            **media.model_dump(exclude={"video", "thumbnail"}),
            video=media.video,
            thumbnail=media.thumbnail,
            manifest=mobj,
            latest=lobj,
            published_at=published_at,
        )

    def publish_clip(
        self,
        storyboard_id: str,
        shot_id: str,
        video: Path,
        thumbnail: Path | None,
        manifest: Manifest,
        *,
        generator: str | None = None,
        take: int | None = None,
    ) -> PublishedClip:
        """Put media, then the manifest, then latest.json (naming the clip's `take`).

        `manifest` is either a callable given the `PublishedMedia` (build the manifest with the published
        URIs and checksums in it), or a mapping, to which a `published` section is added.
        """
        if shot_id == REEL:
            raise InputError(
                f"{REEL!r} is reserved for the storyboard's reel",
                storyboard=storyboard_id,
                shot=shot_id,
                field="id",
            )
        return self._publish(storyboard_id, shot_id, video, thumbnail, manifest, generator, take)

    def publish_reel(
        self,
        storyboard_id: str,
        video: Path,
        manifest: Manifest,
        *,
        thumbnail: Path | None = None,
        generator: str | None = None,
    ) -> PublishedClip:
        """The storyboard's reel, under `<storyboard_id>/reel/`."""
        return self._publish(storyboard_id, REEL, video, thumbnail, manifest, generator)

    def _publish(
        self,
        storyboard_id: str,
        shot_id: str,
        video: Path,
        thumbnail: Path | None,
        manifest: Manifest,
        generator: str | None,
        take: int | None = None,
    ) -> PublishedClip:
        media = self.put_media(storyboard_id, shot_id, video, thumbnail, generator=generator)
        doc = manifest(media) if callable(manifest) else {**manifest, "published": media.manifest_section()}
        return self.put_manifest(media, doc, take=take)

    def read_latest(self, storyboard_id: str, shot_id: str) -> dict[str, Any] | None:
        """The latest.json of a shot (or of the reel, with shot_id "reel"), or None if never published."""
        data = self.read_bytes(f"{storyboard_id}/{shot_id}/{LATEST}")
        return None if data is None else json.loads(data)


class LocalPublisher(Publisher):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"LocalPublisher({str(self.root)!r})"

    @property
    def root_uri(self) -> str:
        return self.root.as_uri()

    def uri_for(self, key: str) -> str:
        return (self.root / key).as_uri()

    def read_bytes(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None

    def _put_file(
        self, path: Path, key: str, *, content_type: str, on_exists: OnExists, metadata: dict[str, str | None]
    ) -> PublishedObject:
        sha = metadata.get("sha256") or sha256_file(path)
        size = path.stat().st_size

        def write(tmp: Path) -> None:
            shutil.copyfile(path, tmp)

        return self._put(key, sha, size, content_type, on_exists, write)

    def _put_bytes(
        self,
        data: bytes,
        key: str,
        *,
        content_type: str,
        on_exists: OnExists,
        metadata: dict[str, str | None],
    ) -> PublishedObject:
        def write(tmp: Path) -> None:
            tmp.write_bytes(data)

        return self._put(key, sha256_bytes(data), len(data), content_type, on_exists, write)

    def _put(
        self,
        key: str,
        sha: str,
        size: int,
        content_type: str,
        on_exists: OnExists,
        write: Callable[[Path], None],
    ) -> PublishedObject:
        dest = self.root / key
        if dest.is_file() and on_exists != "replace":
            have = sha256_file(dest)
            if on_exists == "keep" or have == sha:
                return PublishedObject(
                    uri=dest.as_uri(),
                    key=key,
                    sha256=have,
                    size=dest.stat().st_size,
                    content_type=content_type,
                    skipped=True,
                )
            if on_exists != "update":
                raise PublishError(f"{dest} exists with other content (sha256 {have}, not {sha}); not overwritten")
        try:
            with atomic_path(dest) as tmp:
                write(tmp)
        except OSError as e:
            raise PublishError(f"cannot write {dest}: {e}") from e
        return PublishedObject(uri=dest.as_uri(), key=key, sha256=sha, size=size, content_type=content_type)

    def verify_object(self, key: str, sha256: str, size: int) -> ObjectCheck:
        path = self.root / key
        uri = path.as_uri()
        if not path.is_file():
            return ObjectCheck(uri=uri, size=None, sha256=None, method="read back", problem=f"{uri} is missing")
        have_size, have_sha = path.stat().st_size, sha256_file(path)
        return ObjectCheck(
            uri=uri,
            size=have_size,
            sha256=have_sha,
            method="read back",
            problem=_mismatch(uri, size, sha256, have_size, have_sha),
        )


def _mismatch(uri: str, size: int, sha256: str, have_size: int, have_sha: str | None) -> str | None:
    if have_size != size:
        return f"{uri} is {have_size} bytes, expected {size}"
    if have_sha is not None and have_sha != sha256:
        return f"{uri} has sha256 {have_sha}, expected {sha256}"
    return None


class S3Publisher(Publisher):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        client: BaseClient | None = None,
        *,
        transfer: TransferConfig | None = None,
        url_expires_s: int = DEFAULT_URL_EXPIRES_S,
    ) -> None:
        s3.parse_s3_uri(f"s3://{bucket}", require_key=False)  # validates the bucket name
        if not 1 <= url_expires_s <= s3.MAX_PRESIGN_S:
            raise ValueError(f"url_expires_s must be between 1 and {s3.MAX_PRESIGN_S}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client or s3.s3_client()
        self.transfer = transfer or s3.default_transfer_config()
        self.url_expires_s = url_expires_s

    def __repr__(self) -> str:
        return f"S3Publisher({self.root_uri!r})"

    @property
    def root_uri(self) -> str:
        return s3.s3_uri(self.bucket, self.prefix + "/" if self.prefix else "")

    def object_key(self, key: str) -> str:
        return s3.join_key(self.prefix, key)

    def uri_for(self, key: str) -> str:
        return s3.s3_uri(self.bucket, self.object_key(key))

    def read_bytes(self, key: str) -> bytes | None:
        if s3.head(self.client, self.bucket, self.object_key(key)) is None:
            return None
        return s3.get_bytes(self.client, self.bucket, self.object_key(key))

    def _existing(self, key: str, info: s3.ObjectInfo, content_type: str) -> PublishedObject:
        okey = self.object_key(key)
        # Our own uploads carry their sha256 in metadata; anything else is read back and hashed.
        sha = info.metadata.get("sha256") or sha256_bytes(s3.get_bytes(self.client, self.bucket, okey))
        return PublishedObject(
            uri=s3.s3_uri(self.bucket, okey),
            key=key,
            sha256=sha,
            size=info.size,
            content_type=info.content_type or content_type,
            skipped=True,
        )

    def _put_file(
        self, path: Path, key: str, *, content_type: str, on_exists: OnExists, metadata: dict[str, str | None]
    ) -> PublishedObject:
        okey = self.object_key(key)
        size = path.stat().st_size
        digest = s3.digest_file(path, s3.planned_part_size(self.transfer, size))
        info = s3.head(self.client, self.bucket, okey) if on_exists != "replace" else None
        if info is not None:
            if on_exists == "keep" or digest.matches(info):
                return self._existing(key, info, content_type)
            raise PublishError(
                f"{s3.s3_uri(self.bucket, okey)} exists with other content "
                f"(size {info.size}, checksum {info.checksum_sha256}); not overwritten"
            )
        s3.upload_file(
            self.client,
            path,
            self.bucket,
            okey,
            digest=digest,
            content_type=content_type,
            cache_control=IMMUTABLE,
            metadata={**metadata, "sha256": digest.sha256},
            transfer=self.transfer,
        )
        return PublishedObject(
            uri=s3.s3_uri(self.bucket, okey),
            key=key,
            sha256=digest.sha256,
            size=size,
            content_type=content_type,
        )

    def _put_bytes(
        self,
        data: bytes,
        key: str,
        *,
        content_type: str,
        on_exists: OnExists,
        metadata: dict[str, str | None],
    ) -> PublishedObject:
        okey = self.object_key(key)
        if on_exists != "replace":
            info = s3.head(self.client, self.bucket, okey)
            if info is not None:
                if on_exists == "keep" or s3.digest_bytes(data).matches(info):
                    return self._existing(key, info, content_type)
                if on_exists != "update":
                    raise PublishError(f"{s3.s3_uri(self.bucket, okey)} exists with other content; not overwritten")
        digest, _ = s3.put_bytes(
            self.client,
            data,
            self.bucket,
            okey,
            content_type=content_type,
            cache_control=NO_CACHE if on_exists in ("replace", "update") else IMMUTABLE,
            metadata={**metadata, "sha256": sha256_bytes(data)},
        )
        return PublishedObject(
            uri=s3.s3_uri(self.bucket, okey),
            key=key,
            sha256=digest.sha256,
            size=digest.size,
            content_type=content_type,
        )

    def _presign(self, obj: PublishedObject) -> PublishedObject:
        expires_at = datetime.now(UTC) + timedelta(seconds=self.url_expires_s)
        url = s3.presign_get(self.bucket, self.object_key(obj.key), self.url_expires_s, client=self.client)
        return obj.model_copy(update={"url": url, "url_expires_at": expires_at})

    def verify_object(self, key: str, sha256: str, size: int) -> ObjectCheck:
        okey = self.object_key(key)
        uri = s3.s3_uri(self.bucket, okey)
        info = s3.head(self.client, self.bucket, okey)
        if info is None:
            return ObjectCheck(uri=uri, size=None, sha256=None, method="checksum", problem=f"{uri} is missing")
        if info.size != size:
            return ObjectCheck(
                uri=uri,
                size=info.size,
                sha256=None,
                method="checksum",
                problem=f"{uri} is {info.size} bytes, expected {size}",
            )
        if info.checksum_sha256 and s3.Digest(size, sha256, s3.b64_of_hex(sha256)).matches_checksum(
            info.checksum_sha256
        ):
            return ObjectCheck(uri=uri, size=info.size, sha256=sha256, method="checksum")
        # A multipart upload reports a composite checksum (of the parts' digests), and an object written by
        # another tool may report none: hash what is stored instead.
        have = s3.sha256_of_object(self.client, self.bucket, okey)
        return ObjectCheck(
            uri=uri,
            size=info.size,
            sha256=have,
            method="read back",
            problem=_mismatch(uri, size, sha256, info.size, have),
        )


def verify_published(
    publisher: Publisher, objects: Mapping[str, tuple[str, str, int]], *, latest: tuple[str, str] | None = None
) -> list[ObjectCheck]:
    """Check published objects, `{label: (uri, sha256, size)}`, and that latest.json (`(uri, video sha256)`)
    points at this video. Returns one ObjectCheck per object; look at `.problem`."""
    checks = []
    for label, (uri, sha, size) in objects.items():
        try:
            check = publisher.verify_object(publisher.key_for(uri), sha, size)
        except PublishError as e:
            check = ObjectCheck(uri=uri, size=None, sha256=None, method="checksum", problem=str(e))
        checks.append(check.model_copy(update={"problem": f"{label}: {check.problem}"}) if check.problem else check)
    if latest is not None:
        uri, video_sha = latest
        data: bytes | None = None
        try:
            data = publisher.read_bytes(publisher.key_for(uri))
            points_at = json.loads(data).get("sha256") if data is not None else None
            problem = None
            if data is None:
                problem = f"latest.json: {uri} is missing"
            elif points_at != video_sha:
                problem = f"latest.json: {uri} points at {points_at}, not {video_sha}"
        except (PublishError, ValueError) as e:
            problem = f"latest.json: {e}"
        checks.append(
            ObjectCheck(
                uri=uri, size=None if data is None else len(data), sha256=None, method="read back", problem=problem
            )
        )
    return checks


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
    _check_id(storyboard_id, storyboard_id, shot_id, "storyboard id")
    _check_id(shot_id, storyboard_id, shot_id, "shot id")
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


def _check_id(value: str, storyboard_id: str, shot_id: str, what: str) -> None:
    if not isinstance(value, str) or not _SLUG.match(value):
        raise InputError(
            f"{what} {value!r} is not a lowercase slug [a-z0-9][a-z0-9-]*",
            storyboard=storyboard_id,
            shot=shot_id,
            field="id",
        )


def _check_file(path: Path, suffixes: tuple[str, ...], what: str) -> Path:
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise MediaError(f"the {what} must be a {' or '.join(suffixes)} file, not {path.name}")
    if not path.is_file() or path.stat().st_size == 0:
        raise MediaError(f"the {what} {path} is missing or empty")
    return path
