"""Captions drawn with Pillow into a transparent PNG, to be overlaid on the picture by ffmpeg.

The text is wrapped to the title-safe width (90 % of the frame): between words, and between characters in
Chinese and Japanese, which are written without spaces (not before closing punctuation, not after opening
brackets). It is measured with the fonts' own metrics (ascender and descender, so "gjpqy" keep their tails
and "ÉÅ" their accents) and with the ink box of what is actually drawn, then placed at the top, middle or
bottom of the title-safe area on a semi-opaque box. If it does not fit, the font shrinks; at the smallest
size the last kept line ends with an ellipsis. Nothing is ever clipped.

Fonts (see `fonts.py`): DejaVu Sans Bold, and WenQuanYi Micro Hei for the characters DejaVu lacks, chosen
per character, both shipped in `shotline/fonts/` with their licences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw
from pydantic import BaseModel

from shotline.media import fonts

CaptionPosition = Literal["top", "middle", "bottom"]

FONT_FILE = fonts.PRIMARY
SAFE_FRACTION = 0.90  # title-safe area: 90 % of width and height, centred
MAX_BLOCK_FRACTION = 0.35  # the caption may cover at most this much of the frame height
MAX_LINES = 4
TEXT_FILL = (255, 255, 255, 255)
OUTLINE_FILL = (0, 0, 0, 255)
BOX_FILL = (0, 0, 0, 150)  # about 60 % opaque

font_path = fonts.font_path  # kept for callers of the earlier single-font module

# Characters a line may not start with / end with (a small kinsoku set for Chinese and Japanese).
_NO_BREAK_BEFORE = frozenset(
    "、。，．・：；？！ー）」』】〕〉》〙〗〟’”ゝゞヽヾぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ々…‥,.!?:;)]}%"
)
_NO_BREAK_AFTER = frozenset("（「『【〔〈《〘〖〝‘“([{")


class CaptionLayout(BaseModel):
    """Where the caption box sits in the frame, and how the text was set."""

    text: str
    lines: list[str]
    font: str
    fonts: list[str]  # every font that drew part of the text
    font_size: int
    position: CaptionPosition = "bottom"
    x: int
    y: int
    width: int
    height: int
    truncated: bool = False
    missing_glyphs: list[str] = []
    start_s: float | None = None  # shown from (None: from the first frame)
    end_s: float | None = None  # shown until (None: to the last frame)

    def describe(self) -> dict[str, object]:
        return {"step": "caption", **self.model_dump(), "style": "white bold, dark outline, 60 % black box"}


def _is_cjk(ch: str) -> bool:
    """Han, kana, CJK punctuation and full-width forms: scripts that break between characters."""
    cp = ord(ch)
    return (
        0x3000 <= cp <= 0x30FF
        or 0x3400 <= cp <= 0x4DBF
        or 0x4E00 <= cp <= 0x9FFF
        or 0xF900 <= cp <= 0xFAFF
        or 0xFF00 <= cp <= 0xFFEF
        or 0x20000 <= cp <= 0x3FFFF
    )


def _tokens(paragraph: str) -> list[tuple[str, bool]]:
    """The unbreakable pieces of a paragraph, each with whether a space comes before it."""
    tokens: list[tuple[str, bool]] = []
    for index, word in enumerate(paragraph.split()):
        pieces, cur = [], ""
        for ch in word:
            breakable = cur and (_is_cjk(ch) or _is_cjk(cur[-1]))
            if breakable and ch not in _NO_BREAK_BEFORE and cur[-1] not in _NO_BREAK_AFTER:
                pieces.append(cur)
                cur = ch
            else:
                cur += ch
        pieces.append(cur)
        tokens.append((pieces[0], index > 0))
        tokens.extend((p, False) for p in pieces[1:])
    return tokens


def text_length(text: str, size: int) -> float:
    return sum(fonts.font(name, size).getlength(run) for name, run in fonts.runs(text))


def _break_word(word: str, size: int, max_width: float) -> tuple[list[str], str]:
    """Split a piece wider than a line between characters: (full-width pieces, remainder)."""
    pieces: list[str] = []
    while len(word) > 1 and text_length(word, size) > max_width:
        cut = 1
        while cut < len(word) and text_length(word[: cut + 1], size) <= max_width:
            cut += 1
        pieces.append(word[:cut])
        word = word[cut:]
    return pieces, word


def _wrap(text: str, size: int, max_width: float) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines():
        line = ""
        for token, spaced in _tokens(paragraph):
            candidate = f"{line}{' ' if spaced else ''}{token}" if line else token
            if text_length(candidate, size) <= max_width:
                line = candidate
                continue
            if line:
                lines.append(line)
            pieces, line = _break_word(token, size, max_width)
            lines.extend(pieces)
        if line:
            lines.append(line)
    return lines


def _truncate(lines: list[str], size: int, max_width: float) -> list[str]:
    kept = lines[:MAX_LINES]
    last = kept[-1]
    while last and text_length(last + "…", size) > max_width:
        last = last[:-1].rstrip()
    kept[-1] = last + "…"
    return kept


class _Block(BaseModel, arbitrary_types_allowed=True):
    lines: list[str]
    size: int
    image: Image.Image
    fonts: list[str]

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


def _draw_block(lines: list[str], size: int) -> _Block:
    """The caption box: the lines drawn centred on a rounded semi-opaque box, cropped to what was drawn."""
    used = sorted({name for line in lines for name, _ in fonts.runs(line)}, key=fonts.CHAIN.index)
    pad_x, pad_y = round(size * 0.6), round(size * 0.3)
    stroke, spacing = max(1, size // 16), round(size * 0.2)
    ascent = max(fonts.font(name, size).getmetrics()[0] for name in used)
    descent = max(fonts.font(name, size).getmetrics()[1] for name in used)
    line_h = ascent + descent
    text_w = max(int(text_length(line, size)) for line in lines) + 2 * stroke
    block_h = len(lines) * line_h + (len(lines) - 1) * spacing + 2 * stroke
    margin = size  # room for any glyph that overhangs its metrics
    canvas = Image.new("RGBA", (text_w + 2 * margin, block_h + 2 * margin), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        baseline = margin + stroke + i * (line_h + spacing) + ascent
        x = canvas.width / 2 - text_length(line, size) / 2
        for name, run in fonts.runs(line):
            face = fonts.font(name, size)
            draw.text((x, baseline), run, font=face, fill=TEXT_FILL, anchor="ls",
                      stroke_width=stroke, stroke_fill=OUTLINE_FILL)  # fmt: skip
            x += face.getlength(run)
    # Keep the union of the metric box (ascender to descender of every line) and the actual ink.
    ink = canvas.getbbox() or (margin, margin, margin + text_w, margin + block_h)
    left, top = min(ink[0], margin), min(ink[1], margin)
    right, bottom = max(ink[2], margin + text_w), max(ink[3], margin + block_h)
    text_img = canvas.crop((left, top, right, bottom))
    box = Image.new("RGBA", (text_img.width + 2 * pad_x, text_img.height + 2 * pad_y), (0, 0, 0, 0))
    ImageDraw.Draw(box).rounded_rectangle((0, 0, box.width - 1, box.height - 1), radius=pad_y, fill=BOX_FILL)
    box.alpha_composite(text_img, (pad_x, pad_y))
    return _Block(lines=lines, size=size, image=box, fonts=used)


def _text_width(size: int, safe_w: int) -> int:
    return safe_w - 2 * round(size * 0.6) - 2 * max(1, size // 16)


def render_caption(
    text: str, frame_w: int, frame_h: int, out_png: Path, position: CaptionPosition = "bottom"
) -> CaptionLayout:
    """Write the caption PNG (just the box, RGBA); say where it goes on a `frame_w`x`frame_h` frame."""
    text = "\n".join(p for p in (" ".join(line.split()) for line in text.splitlines()) if p)
    if not text:
        raise ValueError("caption text is empty")
    short = min(frame_w, frame_h)
    safe_w = int(frame_w * SAFE_FRACTION)
    safe_top = round(frame_h * (1 - SAFE_FRACTION) / 2)
    safe_bottom = frame_h - safe_top
    max_block_h = int(frame_h * MAX_BLOCK_FRACTION)
    size, min_size = max(12, round(short * 0.06)), max(10, round(short * 0.03))
    while True:
        lines = _wrap(text, size, _text_width(size, safe_w))
        block = _draw_block(lines, size)
        fits = len(lines) <= MAX_LINES and block.height <= max_block_h and block.width <= safe_w
        if fits or size <= min_size:
            break
        size = max(min_size, int(size * 0.9))
    if not fits:
        block = _draw_block(_truncate(lines, size, _text_width(size, safe_w)), size)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    block.image.save(out_png, format="PNG", compress_level=1)
    if position == "top":
        y = safe_top
    elif position == "middle":
        y = (frame_h - block.height) // 2
    else:
        y = safe_bottom - block.height
    return CaptionLayout(
        text=text,
        lines=block.lines,
        font=block.fonts[0],
        fonts=block.fonts,
        font_size=size,
        position=position,
        x=max(0, (frame_w - block.width) // 2),
        y=max(0, y),
        width=block.width,
        height=block.height,
        truncated=not fits,
        missing_glyphs=fonts.missing_glyphs(text),
    )
