"""Source a shot's still image: fetch it (storyboard path, https URL or s3 URI), validate, normalise, store.

Every refusal is an `InputError` naming the storyboard, the shot and the field `image`. A failure that may
pass on a later try (timeout, connection refused, server error) is its subclass `SourceUnavailable`.
URLs go through shotline.netguard (scheme, address and redirect checks, size and time limits); local paths
must stay inside the storyboard folder. `check_image` runs the same checks offline, for `shotline validate`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from pydantic import BaseModel, ConfigDict

from shotline import s3
from shotline.errors import InputError, MediaError, UrlRefused
from shotline.hashing import sha256_file
from shotline.image_normalise import DEFAULT_MAX_PIXELS, Background, ImageRefused, normalise_image
from shotline.netguard import (
    SOURCE_SCHEMES,
    DownloadLimit,
    Resolver,
    UrlPolicy,
    check_url,
    guarded_stream,
    read_limited,
    redact,
)
from shotline.store import WorkStore
from shotline.storyboard import PathRefused, resolve_inside

log = logging.getLogger(__name__)

FIELD = "image"
DEFAULT_MAX_BYTES = 50 * 1024 * 1024

OriginKind = Literal["path", "https", "s3"]
Refuse = Callable[..., InputError]


class SourceUnavailable(InputError):
    """The image could not be fetched for a reason that may go away (network, timeout, 5xx)."""

    retryable = True


class SourcedImageFacts(BaseModel):
    """A shot's image after sourcing, as later stages record it: where it came from and what the normalised
    PNG is, without where one host keeps it (`SourcedImage` adds that)."""

    model_config = ConfigDict(frozen=True)

    origin: str  # as written in the storyboard
    origin_kind: OriginKind  # "https" also covers http:// when it was explicitly allowed
    resolved: str  # absolute path, final URL (after redirects, without user info) or s3:// URI
    source_sha256: str  # of the bytes fetched
    source_format: str  # Pillow's name: PNG, JPEG, GIF...
    source_size: tuple[int, int]  # (width, height) as stored, before orientation
    source_mode: str
    sha256: str  # of the normalised PNG
    width: int
    height: int
    conversions: list[str]  # what normalisation did, in order (empty: pixels as decoded)


class SourcedImage(SourcedImageFacts):
    """A shot's image after sourcing: where it came from and the normalised PNG in the working store."""

    path: Path  # the normalised PNG in the working store

    @property
    def uri(self) -> str:
        return self.path.resolve().as_uri()


def ingest_image(
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
    policy: UrlPolicy | None = None,
    resolver: Resolver | None = None,
    timeout_s: float = 60.0,
    s3_client: BaseClient | None = None,
) -> SourcedImage:
    """Fetch, validate and normalise one shot image; put the PNG in `store` and describe it.

    URLs are fetched under `policy` (default: `UrlPolicy.from_env()`, widened to plain http when
    `allow_http`): see shotline.netguard."""
    refuse = _refuser(storyboard_id, shot_id)
    url_policy = _policy(policy, allow_http, refuse)
    spec, kind = _classify(spec_image, url_policy, refuse)
    if kind == "s3":
        data, resolved = _fetch_s3(spec, max_bytes, s3_client, refuse)
    elif kind == "https":
        data, resolved = _fetch_url(spec, url_policy, max_bytes, timeout_s, resolver, refuse)
    else:
        data, resolved = _read_path(spec, storyboard_dir, max_bytes, refuse)

    try:
        norm = normalise_image(data, max_side=max_side, min_side=min_side, max_pixels=max_pixels, background=background)
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
    # put_bytes writes under a temp name and renames: a failure leaves no partial object behind
    stored = store.put_bytes(norm.png, ".png")
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


def check_image(
    spec_image: str,
    storyboard_dir: Path,
    *,
    storyboard_id: str,
    shot_id: str,
    min_side: int = 256,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_http: bool = False,
    policy: UrlPolicy | None = None,
) -> None:
    """Every check `ingest_image` makes that needs no network: a local image is read, decoded and normalised
    in memory (nothing is stored); a URL is held to the policy without being fetched (no DNS either); an
    s3:// URI must be well formed. Raises the same InputError `ingest_image` would."""
    refuse = _refuser(storyboard_id, shot_id)
    spec, kind = _classify(spec_image, _policy(policy, allow_http, refuse), refuse)
    if kind == "s3":
        try:
            s3.parse_s3_uri(spec)
        except s3.S3UriError as e:
            raise refuse(str(e)) from e
        return
    if kind == "https":
        return
    data, _ = _read_path(spec, storyboard_dir, max_bytes, refuse)
    try:
        normalise_image(data, min_side=min_side, max_pixels=max_pixels)
    except ImageRefused as e:
        raise refuse(f"{e} ({spec})") from e


def _refuser(storyboard_id: str, shot_id: str) -> Refuse:
    def refuse(message: str, cls: type[InputError] = InputError) -> InputError:
        return cls(message, storyboard=storyboard_id, shot=shot_id, field=FIELD)

    return refuse


def _policy(policy: UrlPolicy | None, allow_http: bool, refuse: Refuse) -> UrlPolicy:
    try:
        base = policy if policy is not None else UrlPolicy.from_env()
    except UrlRefused as e:
        raise refuse(str(e)) from None
    return base.extended(allow_http=allow_http) if allow_http else base


def _classify(spec_image: object, policy: UrlPolicy, refuse: Refuse) -> tuple[str, OriginKind]:
    """The spec, stripped, and where it points; URLs are held to the policy here (no DNS yet)."""
    if not isinstance(spec_image, str) or not spec_image.strip():
        raise refuse("no image given")
    spec = spec_image.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in spec):
        raise refuse("the image reference contains control characters")
    if "://" not in spec:
        return spec, "path"
    try:
        check_url(spec, policy, schemes=SOURCE_SCHEMES)
    except UrlRefused as e:
        raise refuse(str(e)) from None
    return spec, "s3" if spec.lower().startswith("s3://") else "https"


def stored_image(lineage: Mapping[str, Any], store: WorkStore) -> SourcedImage:
    """Rebuild a `SourcedImage` from its JSON form (`model_dump(mode="json")`, `path` optional) and the store.

    This is how a downstream step finds the normalised image from `source_image`'s metadata.
    """
    fields = {k: v for k, v in lineage.items() if k != "path"}
    sha = str(fields.get("sha256") or "")
    stored = store.get(sha, ".png") if sha else None
    if stored is None:
        raise MediaError(
            f"the normalised image {sha or '(no sha256)'} is not in the working store {store.location}: "
            "materialize source_image again"
        )
    # The next step may pay for this image: make sure it is still the one that was checked.
    if sha256_file(stored.path) != sha:
        raise MediaError(
            f"the normalised image {stored.path} no longer matches its sha256 {sha[:12]}...: "
            "materialize source_image again"
        )
    return SourcedImage.model_validate({**fields, "path": stored.path})


def check_image_current(image: SourcedImage, spec_image: str, *, storyboard_id: str, shot_id: str) -> None:
    """Refuse an image (from an earlier source_image) that is not the one the shot names now."""
    if image.origin != spec_image:
        raise InputError(
            f"the shot's image changed since source_image ran ({_redact(image.origin)} -> {_redact(spec_image)}): "
            "materialize source_image again before generating",
            storyboard=storyboard_id,
            shot=shot_id,
            field=FIELD,
        )


def image_url_for_fal(img: SourcedImage) -> str | None:
    """A URL fal can fetch the image from as it is, or None: the generator then uploads the normalised still
    to fal storage. Only an https origin whose pixels normalisation left alone is passed through as written."""
    if img.origin_kind == "https" and img.origin.startswith("https://") and not img.conversions:
        return img.origin
    return None


def _read_path(spec: str, storyboard_dir: Path, max_bytes: int, refuse: Refuse) -> tuple[bytes, str]:
    try:
        real = resolve_inside(storyboard_dir, spec, what="image")
    except PathRefused as e:
        raise refuse(str(e)) from None
    size = real.stat().st_size
    if size > max_bytes:
        raise refuse(f"image file is {size:,} bytes; at most {max_bytes:,} are accepted ({spec})")
    with real.open("rb") as f:
        data = f.read(max_bytes + 1)  # the file may grow between stat and read
    if len(data) > max_bytes:
        raise refuse(f"image file is larger than {max_bytes:,} bytes ({spec})")
    return data, str(real)


def _fetch_url(
    url: str, policy: UrlPolicy, max_bytes: int, timeout_s: float, resolver: Resolver | None, refuse: Refuse
) -> tuple[bytes, str]:
    shown = _redact(url)
    try:
        with guarded_stream(url, policy, timeout=timeout_s, resolver=resolver) as r:
            if r.status_code >= 500 or r.status_code == 429:
                raise refuse(f"server answered {r.status_code} for {shown}", SourceUnavailable)
            if r.status_code != 200:
                raise refuse(f"server answered {r.status_code} for {shown}")
            body = read_limited(r, max_bytes=max_bytes, timeout_s=timeout_s)
            final = _strip_userinfo(str(r.url))
    except InputError:
        raise
    except UrlRefused as e:
        where = "" if e.url == shown else f" (redirected from {shown})"
        raise refuse(f"{e}{where}") from None
    except DownloadLimit as e:
        raise refuse(f"image: {e}", SourceUnavailable if e.kind == "time" else InputError) from None
    except httpx.TooManyRedirects:
        raise refuse(f"too many redirects ({shown})") from None
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as e:
        raise refuse(f"cannot fetch {shown}: {type(e).__name__}", SourceUnavailable) from None
    except httpx.HTTPError as e:
        raise refuse(f"cannot fetch {shown}: {type(e).__name__}") from None
    return body, final


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
        cls = SourceUnavailable if code.startswith("5") or code in ("SlowDown", "InternalError") else InputError
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
    return redact(url)
