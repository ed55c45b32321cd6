"""What people look at first: a small JPEG preview to show inline (a data URI in markdown, never the video),
and a clip's facts under the names people use.

Every materialization keeps its preview in the event log, for every shot, so previews stay small: a still or
frame at most PREVIEW_WIDTH pixels wide in at most PREVIEW_MAX_BYTES of JPEG (a contact sheet: SHEET_WIDTH,
SHEET_MAX_BYTES); the JPEG quality steps down, then the width, until it fits.
"""

from __future__ import annotations

import base64
import contextlib
import io
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image
from pydantic import BaseModel, ConfigDict

from shotline.errors import MediaError, ShotlineError
from shotline.generators.base import GenerationOutcome
from shotline.media.ffmpeg import PathArg, run_ffmpeg
from shotline.storyboard import Shot

PREVIEW_WIDTH = 320
THUMBNAIL_WIDTH = 80  # small enough to show inline where only a few hundred bytes fit
PREVIEW_MAX_BYTES = 24 * 1024
SHEET_WIDTH = 960
SHEET_MAX_BYTES = 56 * 1024
LINK_EXPIRES_S = 7 * 24 * 3600  # SigV4's longest, as for published clips
_QUALITIES = (82, 72, 62, 52, 42, 32, 22)
_MIN_WIDTH = 32
_ALT_UNSAFE = re.compile(r"[\[\]\\\n\r]+")


def jpeg_preview(
    source: Path | Image.Image, *, width: int = PREVIEW_WIDTH, max_bytes: int = PREVIEW_MAX_BYTES
) -> bytes:
    """`source` as a JPEG no wider than `width` and no larger than `max_bytes`."""
    try:
        image = source if isinstance(source, Image.Image) else Image.open(source)
        image.load()
    except (OSError, ValueError) as exc:
        raise MediaError(f"cannot read {source} for a preview: {exc}") from None
    image = image.convert("RGB")
    target = min(width, image.width)
    while True:
        scaled = (
            image
            if image.width <= target
            else image.resize((target, max(1, round(image.height * target / image.width))), Image.Resampling.LANCZOS)
        )
        for quality in _QUALITIES:
            buffer = io.BytesIO()
            # progressive scans each carry their own tables: worth it for a preview, not for a thumbnail
            scaled.save(buffer, format="JPEG", quality=quality, optimize=True, progressive=target > 160)
            if buffer.tell() <= max_bytes:
                return buffer.getvalue()
        if target <= _MIN_WIDTH:
            raise MediaError(f"no preview of {source} fits in {max_bytes} bytes")
        target = max(_MIN_WIDTH, target * 3 // 4)


def data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def image_preview(path: Path, *, width: int = PREVIEW_WIDTH, max_bytes: int = PREVIEW_MAX_BYTES) -> str:
    """The image at `path` as a preview data URI."""
    return data_uri(jpeg_preview(path, width=width, max_bytes=max_bytes))


@contextlib.contextmanager
def video_frame(video: Path, *, at_s: float, width: int = PREVIEW_WIDTH) -> Iterator[Path]:
    """One frame of `video` (at `at_s` seconds, at most `width` wide) as a PNG file, for as long as the
    context lasts."""
    with tempfile.TemporaryDirectory(prefix="shotline-preview-") as scratch:
        frame = Path(scratch) / "frame.png"
        run_ffmpeg(
            [
                "-ss",
                f"{max(0.0, at_s):.3f}",
                "-i",
                PathArg(video, "clip"),
                "-frames:v",
                "1",
                "-vf",
                f"scale='min({width},iw)':-2",
                PathArg(frame, "frame"),
            ],
            what=f"preview frame of {video.name}",
            timeout=60,
        )
        yield frame


def data_uri_budget(max_chars: int) -> int:
    """The most JPEG bytes whose data URI has at most `max_chars` characters (base64: 4 per 3 bytes)."""
    return max(0, (max_chars - len(data_uri(b""))) // 4 * 3)


def preview_markdown(uri: str, alt: str) -> str:
    """Markdown showing the image at `uri` (the Dagster UI renders data URIs in markdown metadata)."""
    return f"![{' '.join(_ALT_UNSAFE.sub(' ', alt).split())}]({uri})"


def clip_link(uri: str, *, expires_s: int = LINK_EXPIRES_S) -> tuple[str, datetime | None]:
    """What opens the object at `uri` from a browser: a presigned GET (and when it expires) for s3://, the URI
    itself otherwise (or when no AWS credentials can sign)."""
    if not uri.startswith("s3://"):
        return uri, None
    from shotline.s3 import parse_s3_uri, presign_get

    bucket, key = parse_s3_uri(uri)
    try:
        url = presign_get(bucket, key, expires_s)
    except ShotlineError:
        return uri, None
    return url, datetime.now(UTC) + timedelta(seconds=expires_s)


class ClipCard(BaseModel):
    """A shot's clip (or still) as people read it in the UI; unknown facts are None and left out."""

    model_config = ConfigDict(frozen=True)

    storyboard_id: str
    shot_id: str
    take: int | None = None
    caption: str | None = None
    prompt: str | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    generator: str | None = None
    model: str | None = None
    preview_generator: bool = False
    cost_usd: float | None = None
    cache_hit: bool = False
    fal_request_id: str | None = None
    link: str | None = None  # opens the clip: a presigned https URL on S3, else its URI
    link_expires_at: datetime | None = None

    @classmethod
    def for_shot(
        cls,
        shot: Shot,
        *,
        prompt: str | None = None,
        generated: GenerationOutcome | None = None,
        cache_hit: bool = False,
        take: int | None = None,
        duration_s: float | None = None,
        width: int | None = None,
        height: int | None = None,
        link: str | None = None,
        link_expires_at: datetime | None = None,
    ) -> ClipCard:
        """The card of `shot`; the generation's facts when there is one, its frame unless given."""
        return cls(
            storyboard_id=shot.storyboard_id,
            shot_id=shot.id,
            take=take if take is not None else shot.take,
            caption=shot.caption,
            prompt=prompt,
            duration_s=duration_s if duration_s is not None else (generated.duration_s if generated else None),
            width=width if width is not None else (generated.width if generated else None),
            height=height if height is not None else (generated.height if generated else None),
            generator=generated.generator if generated else None,
            model=generated.model if generated else None,
            preview_generator=generated.preview if generated else False,
            cost_usd=generated.cost_usd if generated else None,
            cache_hit=cache_hit,
            fal_request_id=generated.request_id if generated else None,
            link=link,
            link_expires_at=link_expires_at,
        )

    @property
    def title(self) -> str:
        return f"{self.storyboard_id} / {self.shot_id}" + (f" (take {self.take})" if self.take else "")

    def facts(self) -> list[tuple[str, str]]:
        """(label, text) in reading order, for what is known; the link and its expiry are separate fields."""
        facts = [("Storyboard", self.storyboard_id), ("Shot", self.shot_id)]
        if self.take is not None:
            facts.append(("Take", str(self.take)))
        if self.caption:
            facts.append(("Caption", self.caption))
        if self.prompt:
            facts.append(("Prompt", self.prompt))
        if self.duration_s is not None:
            facts.append(("Duration", f"{self.duration_s:.2f} s"))
        if self.width and self.height:
            facts.append(("Frame size", f"{self.width}×{self.height}"))
        if self.generator:
            made_by = self.generator + (f" · {self.model}" if self.model else "")
            facts.append(
                ("Generator", made_by + (" (offline preview, not the real model)" if self.preview_generator else ""))
            )
        if self.cost_usd is not None:
            cost = f"${self.cost_usd:.2f}"
            reused = self.cache_hit and self.cost_usd > 0
            facts.append(
                ("Cost", cost + (" when generated; $0.00 this time (reused from the cache)" if reused else ""))
            )
        if self.fal_request_id:
            facts.append(("fal request", self.fal_request_id))
        return facts
