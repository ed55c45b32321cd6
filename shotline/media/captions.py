"""Captions drawn with Pillow into a transparent PNG, to be overlaid on the picture by ffmpeg.

The text is wrapped to the title-safe width (90 % of the frame), measured with the font's own metrics
(ascender and descender, so "gjpqy" keep their tails) and with the ink box of what is actually drawn,
then placed bottom-centre inside the title-safe area on a semi-opaque box. If it does not fit, the font
shrinks; at the smallest size the last kept line ends with an ellipsis. Nothing is ever clipped.
Font: DejaVu Sans Bold, shipped in `shotline/fonts/` with its licence.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from pydantic import BaseModel

FONT_FILE = "DejaVuSans-Bold.ttf"
SAFE_FRACTION = 0.90  # title-safe area: 90 % of width and height, centred
MAX_BLOCK_FRACTION = 0.35  # the caption may cover at most this much of the frame height
MAX_LINES = 4
TEXT_FILL = (255, 255, 255, 255)
OUTLINE_FILL = (0, 0, 0, 255)
BOX_FILL = (0, 0, 0, 150)  # about 60 % opaque


def font_path(name: str = FONT_FILE) -> Path:
    path = Path(str(resources.files("shotline") / "fonts" / name))
    if not path.is_file():
        raise FileNotFoundError(f"font {name} is missing from shotline/fonts")
    return path


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path()), size)


class CaptionLayout(BaseModel):
    """Where the caption box sits in the frame, and how the text was set."""

    text: str
    lines: list[str]
    font: str
    font_size: int
    x: int
    y: int
    width: int
    height: int
    truncated: bool = False

    def describe(self) -> dict[str, object]:
        return {"step": "caption", **self.model_dump(), "style": "white bold, dark outline, 60 % black box"}


def _break_word(word: str, font: ImageFont.FreeTypeFont, max_width: float) -> tuple[list[str], str]:
    """Split a word wider than a line between characters: (full-width pieces, remainder)."""
    pieces: list[str] = []
    while len(word) > 1 and font.getlength(word) > max_width:
        cut = 1
        while cut < len(word) and font.getlength(word[: cut + 1]) <= max_width:
            cut += 1
        pieces.append(word[:cut])
        word = word[cut:]
    return pieces, word


def _wrap(text: str, font: ImageFont.FreeTypeFont, max_width: float) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines():
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= max_width:
                line = candidate
                continue
            if line:
                lines.append(line)
            pieces, line = _break_word(word, font, max_width)
            lines.extend(pieces)
        if line:
            lines.append(line)
    return lines


def _truncate(lines: list[str], font: ImageFont.FreeTypeFont, max_width: float) -> list[str]:
    kept = lines[:MAX_LINES]
    last = kept[-1]
    while last and font.getlength(last + "…") > max_width:
        last = last[:-1].rstrip()
    kept[-1] = last + "…"
    return kept


class _Block(BaseModel, arbitrary_types_allowed=True):
    lines: list[str]
    size: int
    image: Image.Image

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


def _draw_block(lines: list[str], size: int) -> _Block:
    """The caption box: the lines drawn centred on a rounded semi-opaque box, cropped to what was drawn."""
    font = _font(size)
    pad_x, pad_y = round(size * 0.6), round(size * 0.3)
    stroke, spacing = max(1, size // 16), round(size * 0.2)
    ascent, descent = font.getmetrics()
    line_h = ascent + descent
    text_w = max(int(font.getlength(line)) for line in lines) + 2 * stroke
    block_h = len(lines) * line_h + (len(lines) - 1) * spacing + 2 * stroke
    margin = size  # room for any glyph that overhangs its metrics
    canvas = Image.new("RGBA", (text_w + 2 * margin, block_h + 2 * margin), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        top = margin + stroke + i * (line_h + spacing)
        draw.text(
            (canvas.width / 2, top),
            line,
            font=font,
            fill=TEXT_FILL,
            anchor="ma",
            stroke_width=stroke,
            stroke_fill=OUTLINE_FILL,
        )
    # Keep the union of the metric box (ascender to descender of every line) and the actual ink.
    ink = canvas.getbbox() or (margin, margin, margin + text_w, margin + block_h)
    left, top = min(ink[0], margin), min(ink[1], margin)
    right, bottom = max(ink[2], margin + text_w), max(ink[3], margin + block_h)
    text_img = canvas.crop((left, top, right, bottom))
    box = Image.new("RGBA", (text_img.width + 2 * pad_x, text_img.height + 2 * pad_y), (0, 0, 0, 0))
    ImageDraw.Draw(box).rounded_rectangle((0, 0, box.width - 1, box.height - 1), radius=pad_y, fill=BOX_FILL)
    box.alpha_composite(text_img, (pad_x, pad_y))
    return _Block(lines=lines, size=size, image=box)


def _text_width(size: int, safe_w: int) -> int:
    return safe_w - 2 * round(size * 0.6) - 2 * max(1, size // 16)


def render_caption(text: str, frame_w: int, frame_h: int, out_png: Path) -> CaptionLayout:
    """Write the caption PNG (just the box, RGBA); say where it goes on a `frame_w`x`frame_h` frame."""
    text = "\n".join(p for p in (" ".join(line.split()) for line in text.splitlines()) if p)
    if not text:
        raise ValueError("caption text is empty")
    short = min(frame_w, frame_h)
    safe_w = int(frame_w * SAFE_FRACTION)
    safe_bottom = frame_h - round(frame_h * (1 - SAFE_FRACTION) / 2)
    max_block_h = int(frame_h * MAX_BLOCK_FRACTION)
    size, min_size = max(12, round(short * 0.06)), max(10, round(short * 0.03))
    while True:
        lines = _wrap(text, _font(size), _text_width(size, safe_w))
        block = _draw_block(lines, size)
        fits = len(lines) <= MAX_LINES and block.height <= max_block_h and block.width <= safe_w
        if fits or size <= min_size:
            break
        size = max(min_size, int(size * 0.9))
    if not fits:
        block = _draw_block(_truncate(lines, _font(size), _text_width(size, safe_w)), size)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    block.image.save(out_png, format="PNG", compress_level=1)
    return CaptionLayout(
        text=text,
        lines=block.lines,
        font=FONT_FILE,
        font_size=size,
        x=max(0, (frame_w - block.width) // 2),
        y=max(0, safe_bottom - block.height),
        width=block.width,
        height=block.height,
        truncated=not fits,
    )
