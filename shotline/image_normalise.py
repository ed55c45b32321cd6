"""Validate and normalise a still image with Pillow: one upright 8-bit RGB PNG, the same bytes every time.

Pure functions over bytes; the caller (shotline.images) fetches the source and turns `ImageRefused` into an
`InputError` naming the storyboard, shot and field.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import Literal, cast

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

# Formats a storyboard image may be in. Pillow opens many more (EPS runs Ghostscript, PSD, ICO...); a
# short allow-list keeps the attack surface to well-trodden decoders.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "TIFF", "BMP")  # JPEG includes MPO
DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000; Pillow's own bomb check starts at ~89 Mpx

Background = Literal["white", "black"]
_ORIENTATION_TAG = 0x0112
_ORIENTATION_NAMES = {
    2: "mirror horizontal",
    3: "rotate 180",
    4: "mirror vertical",
    5: "transpose",
    6: "rotate 90 CW",
    7: "transverse",
    8: "rotate 90 CCW",
}


class ImageRefused(ValueError):
    """The bytes are not an acceptable image; the message says why, for a human."""


@dataclass
class Normalised:
    png: bytes
    width: int
    height: int
    source_format: str
    source_size: tuple[int, int]
    source_mode: str
    conversions: list[str] = field(default_factory=list)


def normalise_image(
    data: bytes,
    *,
    max_side: int = 2048,
    min_side: int = 256,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: Background = "white",
) -> Normalised:
    """Check that `data` is a whole, sane image and return it as a deterministic RGB PNG."""
    with warnings.catch_warnings():
        # Pillow warns (rather than fails) between MAX_IMAGE_PIXELS and twice that; refuse those too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            _verify(data, max_pixels)
            opened = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            opened.load()
        except ImageRefused:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageRefused(f"image is too large to decode safely ({e})") from e
        except UnidentifiedImageError as e:
            raise ImageRefused(f"not an image in an accepted format ({', '.join(ACCEPTED_FORMATS)})") from e
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ImageRefused(f"image is corrupt or truncated: {e}") from e

    source_format = str(opened.format)
    source_size = opened.size
    source_mode = opened.mode
    im: Image.Image = opened
    conversions: list[str] = []

    n_frames = int(getattr(im, "n_frames", 1))
    if getattr(im, "is_animated", False) and n_frames > 1:
        im.seek(0)
        conversions.append(f"first frame of {n_frames}")

    orientation = im.getexif().get(_ORIENTATION_TAG)
    upright = ImageOps.exif_transpose(im)
    if orientation in _ORIENTATION_NAMES:
        conversions.append(f"EXIF orientation {orientation} ({_ORIENTATION_NAMES[orientation]})")
    im = upright

    if min(im.size) < min_side:
        raise ImageRefused(f"image is {im.width}x{im.height}; the short side must be at least {min_side} px")

    im = _to_rgb(im, background, conversions)

    if max(im.size) > max_side:
        scale = max_side / max(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        conversions.append(f"resized {im.width}x{im.height} -> {size[0]}x{size[1]} (LANCZOS)")
        im = im.resize(size, Image.Resampling.LANCZOS)

    return Normalised(
        png=_png_bytes(im),
        width=im.width,
        height=im.height,
        source_format=source_format,
        source_size=source_size,
        source_mode=source_mode,
        conversions=conversions,
    )


def _verify(data: bytes, max_pixels: int) -> None:
    # Image.open reads only the header: check the pixel count before anything is decoded.
    with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as probe:
        w, h = probe.size
        if w * h > max_pixels:
            raise ImageRefused(f"image is {w}x{h} ({w * h:,} pixels); at most {max_pixels:,} are accepted")
        probe.verify()


def _to_rgb(im: Image.Image, background: Background, conversions: list[str]) -> Image.Image:
    mode = im.mode
    icc = im.info.get("icc_profile")

    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # Pillow's I -> L conversion clips at 255; scale 16-bit values down instead.
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
        conversions.append(f"{mode} (16-bit) -> 8-bit")
        mode = "L"
        icc = None
    elif mode == "F":
        lo, hi = cast(tuple[float, float], im.getextrema())  # one band: (min, max)
        span = (hi - lo) or 1.0
        im = im.point(lambda v: (v - lo) * (255.0 / span)).convert("L")
        conversions.append("F (float) -> 8-bit, stretched to full range")
        mode = "L"
        icc = None

    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        im = im.convert("RGBA")
        alpha_low = cast(tuple[tuple[int, int], ...], im.getextrema())[3][0]  # RGBA: one (min, max) per band
        if alpha_low < 255:
            fill = (255, 255, 255, 255) if background == "white" else (0, 0, 0, 255)
            im = Image.alpha_composite(Image.new("RGBA", im.size, fill), im)
            conversions.append(f"alpha flattened on {background}")
        else:
            conversions.append("opaque alpha channel dropped")
        im = im.convert("RGB")
        mode = "RGB"

    if icc and mode in ("RGB", "CMYK", "L"):
        converted = _icc_to_srgb(im, icc)
        if converted is not None:
            conversions.append(f"{mode} ICC profile -> sRGB")
            return converted

    if mode != "RGB":
        try:
            im = im.convert("RGB")
        except ValueError as e:
            raise ImageRefused(f"cannot convert colour mode {mode} to RGB") from e
        conversions.append(f"{mode} -> RGB")
    return im


def _icc_to_srgb(im: Image.Image, icc: bytes) -> Image.Image | None:
    """Convert through the embedded profile to sRGB; None if it is sRGB already or unusable."""
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if im.mode == "RGB" and "srgb" in ImageCms.getProfileDescription(src).lower():
            return None  # already sRGB: converting would only add rounding noise
        out = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None
    return out


def _png_bytes(im: Image.Image) -> bytes:
    # Fresh info dict: no ICC, EXIF, text or dpi chunks travel into the PNG, and Pillow writes no tIME
    # chunk, so equal pixels give equal bytes (for one Pillow/zlib build).
    im = im.copy()
    im.info = {}
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
