"""The caption fonts shipped in `shotline/fonts/` (with their licences), and which one draws each character.

DejaVu Sans Bold draws Latin (accents included), Greek and Cyrillic; WenQuanYi Micro Hei draws what DejaVu
lacks: Chinese, Japanese kana and Korean Hangul. The choice is made per character from each font's
character map, so a caption mixing scripts is drawn in runs, each in a font that has its glyphs. Nothing is
fetched at run time.
"""

from __future__ import annotations

import functools
import unicodedata
from importlib import resources
from pathlib import Path

from fontTools.ttLib import TTCollection, TTFont
from PIL import ImageFont

PRIMARY = "DejaVuSans-Bold.ttf"
# Tried in order for a character the primary font lacks.
FALLBACKS = ("wqy-microhei.ttc",)
CHAIN = (PRIMARY, *FALLBACKS)


def font_path(name: str = PRIMARY) -> Path:
    path = Path(str(resources.files("shotline") / "fonts" / name))
    if not path.is_file():
        raise FileNotFoundError(f"font {name} is missing from shotline/fonts")
    return path


@functools.cache
def coverage(name: str) -> frozenset[int]:
    """The code points the font maps to a glyph (face 0 of a collection)."""
    path = font_path(name)
    if path.suffix.lower() == ".ttc":
        face = TTCollection(str(path), lazy=True).fonts[0]
    else:
        face = TTFont(str(path), lazy=True)
    try:
        return frozenset(face.getBestCmap() or {})
    finally:
        face.close()


@functools.cache
def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(name)), size, index=0)


def font_for(ch: str) -> str | None:
    """The first font of the chain that has `ch`; None when none has it."""
    cp = ord(ch)
    for name in CHAIN:
        if cp in coverage(name):
            return name
    return None


def runs(text: str) -> list[tuple[str, str]]:
    """Split `text` into (font name, text) runs. Spaces and combining marks stay in the run they follow;
    a character no font has goes to the primary font (and shows as its missing-glyph box)."""
    out: list[tuple[str, str]] = []
    for ch in text:
        follows = out and (ch.isspace() or unicodedata.combining(ch))
        name = out[-1][0] if follows else font_for(ch) or PRIMARY
        if out and out[-1][0] == name:
            out[-1] = (name, out[-1][1] + ch)
        else:
            out.append((name, ch))
    return out


def missing_glyphs(text: str) -> list[str]:
    """Characters of `text` that no shipped font can draw (whitespace and control characters aside)."""
    seen: list[str] = []
    for ch in text:
        if ch.isspace() or unicodedata.category(ch).startswith("C") or ch in seen:
            continue
        if font_for(ch) is None and not unicodedata.combining(ch):
            seen.append(ch)
    return seen
