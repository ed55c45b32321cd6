"""Verification of published objects: is each there with the right size and sha256, and does latest.json
point at the video?

A backend's `verify_object` checks one object: on S3 with a HEAD in checksum mode (a multipart object's
composite checksum, or none, falls back to reading it back and hashing), locally by reading it back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from shotline.errors import PublishError

if TYPE_CHECKING:
    from shotline.publish.layout import Publisher


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


def mismatch(uri: str, size: int, sha256: str, have_size: int, have_sha: str | None) -> str | None:
    """What differs from the expected size and sha256 (None: nothing; a sha256 not computed is not compared)."""
    if have_size != size:
        return f"{uri} is {have_size} bytes, expected {size}"
    if have_sha is not None and have_sha != sha256:
        return f"{uri} has sha256 {have_sha}, expected {sha256}"
    return None


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
