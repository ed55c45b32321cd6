"""Source a shot's still image: fetch it (storyboard path, https URL or s3 URI), validate, normalise, store.

Every refusal is an `InputError` naming the storyboard, the shot and the field `image`. A failure that may
pass on a later try (timeout, connection refused, server error) is its subclass `SourceUnavailable`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from pydantic import BaseModel, ConfigDict

from shotline import s3
from shotline.errors import InputError, MediaError
from shotline.image_normalise import DEFAULT_MAX_PIXELS, Background, ImageRefused, normalise_image
from shotline.store import WorkStore

log = logging.getLogger(__name__)

FIELD = "image"
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
FAL_URL_EXPIRES_S = 6 * 3600  # long enough for a queued fal request to fetch its input

OriginKind = Literal["path", "https", "s3"]
Refuse = Callable[..., InputError]


class SourceUnavailable(InputError):
    """The image could not be fetched for a reason that may go away (network, timeout, 5xx)."""

    retryable = True


class SourcedImage(BaseModel):
    """A shot's image after sourcing: where it came from and the normalised PNG in the working store."""

    model_config = ConfigDict(frozen=True)

    origin: str  # as written in the storyboard
    origin_kind: OriginKind  # "https" also covers http:// when it was explicitly allowed
    resolved: str  # absolute path, final URL (after redirects, without user info) or s3:// URI
    source_sha256: str  # of the bytes fetched
    source_format: str  # Pillow's name: PNG, JPEG, GIF...
    source_size: tuple[int, int]  # (width, height) as stored, before orientation
    source_mode: str
    sha256: str  # of the normalised PNG
    path: Path  # the normalised PNG in the working store
    width: int
    height: int
    conversions: list[str]  # what normalisation did, in order (empty: pixels as decoded)

    @property
    def uri(self) -> str:
        return self.path.resolve().as_uri()


def source_image(
    spec_image: str,
    storyboard_dir: Path,
    store: WorkStore,
    *,
    storyboard_id: str,
    shot_id: str,
    max_side: int = 2048,
    min_side: int = 256,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: Background = "white",
    allow_http: bool = False,
    timeout_s: float = 60.0,
    s3_client: BaseClient | None = None,
) -> SourcedImage:
    """Fetch, validate and normalise one shot image; put the PNG in `store` and describe it."""

    def refuse(message: str, cls: type[InputError] = InputError) -> InputError:
        return cls(message, storyboard=storyboard_id, shot=shot_id, field=FIELD)

    if not isinstance(spec_image, str) or not spec_image.strip():
        raise refuse("no image given")
    spec = spec_image.strip()
    scheme = urlsplit(spec).scheme.lower() if "://" in spec else ""

    kind: OriginKind
    if scheme == "s3":
        kind = "s3"
        data, resolved = _fetch_s3(spec, max_bytes, s3_client, refuse)
    elif scheme in ("https", "http"):
        kind = "https"
        if scheme == "http" and not allow_http:
            raise refuse(f"plain http:// URLs are refused, use https:// ({_redact(spec)})")
        data, resolved = _fetch_url(spec, max_bytes, timeout_s, allow_http, refuse)
    elif scheme:
        raise refuse(
            f"unsupported URL scheme {scheme!r}: use a path inside the storyboard, https:// or s3://"
        )
    else:
        kind = "path"
        data, resolved = _read_path(spec, storyboard_dir, max_bytes, refuse)

    try:
        norm = normalise_image(
            data, max_side=max_side, min_side=min_side, max_pixels=max_pixels, background=background
        )
    except ImageRefused as e:
        raise refuse(f"{e} ({_redact(spec)})") from e

    log.debug(
        "sourced %s/%s image from %s: %s %s -> %dx%d",
        storyboard_id,
        shot_id,
        _redact(spec),
        norm.source_format,
        norm.source_size,
        norm.width,
        norm.height,
    )
    with store.scratch("image") as tmp:
        scratch = tmp / "normalised.png"
        scratch.write_bytes(norm.png)
        stored = store.put_file(scratch, ".png")
    return SourcedImage(
        origin=spec_image,
        origin_kind=kind,
        resolved=resolved,
        source_sha256=s3.digest_bytes(data).sha256,
        source_format=norm.source_format,
        source_size=norm.source_size,
        source_mode=norm.source_mode,
        sha256=stored.sha256,
        path=stored.path,
        width=norm.width,
        height=norm.height,
        conversions=norm.conversions,
    )


def stored_image(lineage: Mapping[str, Any], store: WorkStore) -> SourcedImage:
    """Rebuild a `SourcedImage` from its JSON form (`model_dump(mode="json")`, `path` optional) and the store.

    This is how a downstream step finds the normalised image from `source_image`'s metadata.
    """
    fields = {k: v for k, v in lineage.items() if k != "path"}
    sha = str(fields.get("sha256") or "")
    stored = store.get(sha, ".png") if sha else None
    if stored is None:
        raise MediaError(
            f"the normalised image {sha or '(no sha256)'} is not in the working store {store.root}: "
            "materialize source_image again"
        )
    return SourcedImage.model_validate({**fields, "path": stored.path})


def image_url_for_fal(
    img: SourcedImage,
    *,
    publish_uri: str,
    store: WorkStore | None = None,
    s3_client: BaseClient | None = None,
    expires_s: int = FAL_URL_EXPIRES_S,
) -> str | None:
    """A URL fal can fetch the image from, or None to send it inline as a data URI.

    - An https origin whose pixels normalisation left alone is passed through as written.
    - Otherwise, when publishing to S3, the normalised PNG goes to `<prefix>/_inputs/<sha256>.png`
      (once) and a presigned GET URL valid for `expires_s` is returned.
    - Otherwise None.
    """
    if img.origin_kind == "https" and img.origin.startswith("https://") and not img.conversions:
        return img.origin
    if not publish_uri.startswith("s3://"):
        return None
    bucket, prefix = s3.parse_s3_uri(publish_uri, require_key=False)
    key = s3.join_key(prefix, "_inputs", f"{img.sha256}.png")
    path = img.path
    if not path.is_file() and store is not None:  # e.g. a lineage record from another machine's store
        path = store.object_path(img.sha256, ".png")
    if not path.is_file():
        raise MediaError(f"the normalised image {img.sha256} is missing ({path})")
    client = s3_client or s3.s3_client()
    digest = s3.digest_file(path)
    if digest.sha256 != img.sha256:
        raise MediaError(f"stored image {path} no longer matches its sha256 {img.sha256}")
    existing = s3.head(client, bucket, key)
    if existing is None or not digest.matches(existing):
        s3.upload_file(
            client,
            path,
            bucket,
            key,
            digest=digest,
            content_type="image/png",
            cache_control="public, max-age=31536000, immutable",
            metadata={"sha256": img.sha256},
            transfer=_single_put_transfer(),
        )
    return s3.presign_get(bucket, key, expires_s, client=client)


def _single_put_transfer() -> TransferConfig:
    # Normalised stills are at most a few MiB: one PUT, full-object checksum.
    return TransferConfig(multipart_threshold=1 << 40, preferred_transfer_client="classic")


# --- sources --------------------------------------------------------------------------------------------


def _read_path(spec: str, storyboard_dir: Path, max_bytes: int, refuse: Refuse) -> tuple[bytes, str]:
    rel = PurePosixPath(spec.replace("\\", "/"))
    if rel.is_absolute() or Path(spec).is_absolute():
        raise refuse(f"absolute paths are refused; give a path inside the storyboard folder ({spec})")
    if ".." in rel.parts:
        raise refuse(
            f"'..' is refused in image paths; the image must be inside the storyboard folder ({spec})"
        )
    root = Path(storyboard_dir).resolve()
    candidate = root.joinpath(*rel.parts)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        raise refuse(f"image file not found: {spec}") from None
    if not real.is_relative_to(root):
        raise refuse(f"image path leads outside the storyboard folder (through a symlink): {spec}")
    if not real.is_file():
        raise refuse(f"not a regular file: {spec}")
    size = real.stat().st_size
    if size > max_bytes:
        raise refuse(f"image file is {size:,} bytes; at most {max_bytes:,} are accepted ({spec})")
    return real.read_bytes(), str(real)


def _fetch_url(
    url: str, max_bytes: int, timeout_s: float, allow_http: bool, refuse: Refuse
) -> tuple[bytes, str]:
    shown = _redact(url)

    def guard_scheme(request: httpx.Request) -> None:
        # Runs for every hop, so a redirect cannot downgrade https to http.
        if request.url.scheme != "https" and not (allow_http and request.url.scheme == "http"):
            raise refuse(f"redirected to a non-https URL ({_redact(str(request.url))}) from {shown}")

    deadline = time.monotonic() + timeout_s
    try:
        with (
            httpx.Client(
                timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
                follow_redirects=True,
                max_redirects=5,
                event_hooks={"request": [guard_scheme]},
                headers={"User-Agent": "shotline"},
            ) as client,
            client.stream("GET", url) as r,
        ):
            if r.status_code >= 500 or r.status_code == 429:
                raise refuse(f"server answered {r.status_code} for {shown}", SourceUnavailable)
            if r.status_code != 200:
                raise refuse(f"server answered {r.status_code} for {shown}")
            declared = r.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise refuse(
                    f"image is {int(declared):,} bytes; at most {max_bytes:,} are accepted ({shown})"
                )
            body = bytearray()
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise refuse(f"image is larger than {max_bytes:,} bytes ({shown})")
                if time.monotonic() > deadline:
                    raise refuse(f"download took longer than {timeout_s:g} s ({shown})", SourceUnavailable)
            final = _strip_userinfo(str(r.url))
    except InputError:
        raise
    except httpx.TooManyRedirects as e:
        raise refuse(f"too many redirects ({shown})") from e
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as e:
        raise refuse(f"cannot fetch {shown}: {type(e).__name__}", SourceUnavailable) from e
    except httpx.HTTPError as e:
        raise refuse(f"cannot fetch {shown}: {type(e).__name__}") from e
    return bytes(body), final


def _fetch_s3(uri: str, max_bytes: int, client: BaseClient | None, refuse: Refuse) -> tuple[bytes, str]:
    try:
        bucket, key = s3.parse_s3_uri(uri)
    except s3.S3UriError as e:
        raise refuse(str(e)) from e
    try:
        client = client or s3.s3_client()
        obj = client.get_object(Bucket=bucket, Key=key)
        size = int(obj.get("ContentLength") or 0)
        if size > max_bytes:
            obj["Body"].close()
            raise refuse(f"image is {size:,} bytes; at most {max_bytes:,} are accepted ({uri})")
        data = obj["Body"].read(max_bytes + 1)
    except InputError:
        raise
    except ClientError as e:
        code = s3.error_code(e)
        if code in ("NoSuchKey", "404", "NotFound"):
            raise refuse(f"no such object: {uri}") from e
        if code == "NoSuchBucket":
            raise refuse(f"no such bucket: {bucket} ({uri})") from e
        cls = (
            SourceUnavailable if code.startswith("5") or code in ("SlowDown", "InternalError") else InputError
        )
        raise refuse(f"cannot read {uri}: {s3.describe_error(e)}", cls) from e
    except NoCredentialsError as e:
        raise refuse(f"cannot read {uri}: {s3.describe_error(e)}") from e
    except BotoCoreError as e:
        raise refuse(f"cannot read {uri}: {s3.describe_error(e)}", SourceUnavailable) from e
    if len(data) > max_bytes:
        raise refuse(f"image is larger than {max_bytes:,} bytes ({uri})")
    return data, s3.s3_uri(bucket, key)


def _strip_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _redact(url: str) -> str:
    """A URL fit for an error message: no user info, no query string (it may hold a signature)."""
    if "://" not in url:
        return url
    parts = urlsplit(_strip_userinfo(url))
    return urlunsplit(parts._replace(query="…" if parts.query else "", fragment=""))
