"""The published layout: where a clip, its thumbnail, manifest and latest.json go, written by a `Publisher`.

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

The backends (shotline.publish.local, shotline.publish.s3) only put, read and verify one object.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict

from shotline.errors import InputError, MediaError, PublishError
from shotline.hashing import sha256_bytes, sha256_file
from shotline.manifest import LatestFiles, LatestPointer
from shotline.publish.verify import ObjectCheck

REEL = "reel"
LATEST = "latest.json"
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".json": "application/json",
    ".csv": "text/csv; charset=utf-8",
}


SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")

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


# A function that builds the manifest once the media's URIs and checksums are known.
Manifest = Callable[[PublishedMedia], Mapping[str, Any]]


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
        check_id(storyboard_id, storyboard_id, "", "storyboard id")
        if "/" in name or "." not in name or SLUG.match(name.split(".", 1)[0]) is None:
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
        check_id(storyboard_id, storyboard_id, "", "storyboard id")
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
        check_id(storyboard_id, storyboard_id, shot_id, "storyboard id")
        check_id(shot_id, storyboard_id, shot_id, "shot id")
        video = check_file(video, (".mp4",), "video")
        if thumbnail is not None:
            thumbnail = check_file(thumbnail, (".jpg", ".jpeg"), "thumbnail")
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
        """Put media, then the manifest, then latest.json (naming the clip's `take`). `manifest` is given the
        `PublishedMedia`, so that the manifest it builds carries the published URIs and checksums."""
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
        return self.put_manifest(media, manifest(media), take=take)

    def read_latest(self, storyboard_id: str, shot_id: str) -> dict[str, Any] | None:
        """The latest.json of a shot (or of the reel, with shot_id "reel"), or None if never published."""
        data = self.read_bytes(f"{storyboard_id}/{shot_id}/{LATEST}")
        return None if data is None else json.loads(data)


def check_id(value: str, storyboard_id: str, shot_id: str, what: str) -> None:
    if not isinstance(value, str) or not SLUG.match(value):
        raise InputError(
            f"{what} {value!r} is not a lowercase slug [a-z0-9][a-z0-9-]*",
            storyboard=storyboard_id,
            shot=shot_id,
            field="id",
        )


def check_file(path: Path, suffixes: tuple[str, ...], what: str) -> Path:
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise MediaError(f"the {what} must be a {' or '.join(suffixes)} file, not {path.name}")
    if not path.is_file() or path.stat().st_size == 0:
        raise MediaError(f"the {what} {path} is missing or empty")
    return path
