"""Logo / watermark: the image scaled and made translucent once with Pillow, then overlaid by ffmpeg.

Preparing the PNG up front means the per-frame work in ffmpeg is a single alpha blend of a small picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

from shotline.errors import MediaError
from shotline.hashing import sha256_file
from shotline.media.frames import even

LogoPosition = Literal["top-left", "top-right", "bottom-left", "bottom-right", "center"]


class LogoSpec(BaseModel):
    """A logo image (PNG with alpha, or any picture Pillow reads) placed in a corner or the centre."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    position: LogoPosition = "top-right"
    scale: float = Field(0.12, gt=0, le=0.5)  # logo width as a fraction of the frame width
    opacity: float = Field(0.8, gt=0, le=1)
    margin: float = Field(0.05, ge=0, le=0.2)  # from the frame edges, fraction of width / height


class LogoLayout(BaseModel):
    file: str
    sha256: str
    position: LogoPosition
    x: int
    y: int
    width: int
    height: int
    opacity: float

    def describe(self) -> dict[str, object]:
        return {"step": "logo", **self.model_dump()}


def prepare_logo(spec: LogoSpec, frame: tuple[int, int], out_png: Path) -> LogoLayout:
    """Write the scaled, translucent logo as an RGBA PNG and say where it goes in a `frame`-sized picture."""
    w, h = frame
    try:
        with Image.open(spec.path) as im:
            logo = im.convert("RGBA")
    except (OSError, UnidentifiedImageError) as exc:
        raise MediaError(f"logo {spec.path.name}: not a readable image ({exc})") from None
    width = min(even(w * spec.scale), w)
    height = min(max(2, round(logo.height * width / logo.width)), h)
    logo = logo.resize((width, height), Image.Resampling.LANCZOS)
    if spec.opacity < 1:
        alpha = logo.getchannel("A").point(lambda a: round(a * spec.opacity))
        logo.putalpha(alpha)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    logo.save(out_png, format="PNG", compress_level=1)
    mx, my = round(w * spec.margin), round(h * spec.margin)
    x = {"left": mx, "right": w - width - mx}.get(spec.position.partition("-")[2], (w - width) // 2)
    y = {"top": my, "bottom": h - height - my}.get(spec.position.partition("-")[0], (h - height) // 2)
    return LogoLayout(
        file=spec.path.name,
        sha256=sha256_file(spec.path),
        position=spec.position,
        x=max(0, x),
        y=max(0, y),
        width=width,
        height=height,
        opacity=spec.opacity,
    )
