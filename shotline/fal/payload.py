"""The model input of a fal request: the still as a URL, the prompt and the clip's shape, and how it is recorded.

The still goes as the URL the request gives, else uploaded to fal storage (once per distinct image), else, for
tiny images or when no storage is configured, inline as a data URI. The ledger and lineage keep the image by
sha256, never its bytes or a presigned URL's signature.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from shotline.errors import InputError
from shotline.fal.models import SubmitPayload
from shotline.fal.storage import data_uri
from shotline.fal.uploads import StillUploads
from shotline.generators.base import GenerationRequest, LogFn
from shotline.hashing import sha256_bytes


def build_payload(request: GenerationRequest, uploads: StillUploads | None, log: LogFn) -> SubmitPayload:
    """The model input for `request`: its image URL as given, or the still uploaded with `uploads`
    (a data URI only for tiny images, or when `uploads` is None)."""
    image_url = request.image_url or _still_url(request, uploads, log)
    try:
        return SubmitPayload(
            prompt=request.prompt,
            image_url=image_url,
            duration=request.duration,
            resolution=request.resolution,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise InputError(
            f"not a valid fal input: {first['msg']}",
            storyboard=request.storyboard_id,
            shot=request.shot_id,
            field=field,
        ) from exc


def _still_url(request: GenerationRequest, uploads: StillUploads | None, log: LogFn) -> str:
    data, mime = read_still(request)
    if uploads is None:
        return data_uri(data, mime)
    return uploads.url_for(data, request.image_sha256, mime, log)


def read_still(request: GenerationRequest) -> tuple[bytes, str]:
    """The stored still's bytes and MIME type, checked against the sha256 the clip key was made from."""
    try:
        data = request.image_path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot read the image {request.image_path}: {exc}",
            storyboard=request.storyboard_id,
            shot=request.shot_id,
            field="image",
        ) from exc
    if sha256_bytes(data) != request.image_sha256:
        raise InputError(
            f"the image {request.image_path} changed since it was hashed (sha256 {request.image_sha256[:12]}...)",
            storyboard=request.storyboard_id,
            shot=request.shot_id,
            field="image",
        )
    mime = _image_mime(data)
    if mime is None:
        raise InputError(
            f"the image {request.image_path} is not a PNG, JPEG or WebP file",
            storyboard=request.storyboard_id,
            shot=request.shot_id,
            field="image",
        )
    return data, mime


def _image_mime(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def recorded_parameters(payload: SubmitPayload, request: GenerationRequest) -> dict[str, Any]:
    """The payload as the ledger and lineage keep it: the image by sha256, never its bytes or a URL's query
    (presigned URLs carry signatures)."""
    parameters: dict[str, Any] = payload.model_dump(exclude={"image_url"})
    parameters["image_sha256"] = request.image_sha256
    if payload.image_url.startswith("data:"):
        parameters["image_source"] = "data-uri"
    else:
        parts = urlsplit(payload.image_url)
        parameters["image_source"] = "url" if request.image_url else "fal-storage"
        parameters["image_url"] = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return parameters
