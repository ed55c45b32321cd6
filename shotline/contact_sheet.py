"""A storyboard's contact sheet: one image with every shot's thumbnail, id, caption, duration, generator and
cost, in shot order, under a header with the storyboard's title and totals, so it can be reviewed at a glance.

Drawn with Pillow in the fonts shipped in shotline/fonts/. The same tiles give the same bytes (nothing
time-dependent is drawn), so an unchanged storyboard publishes nothing new.
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps
from pydantic import BaseModel, ConfigDict

from shotline.fsutil import atomic_path

THUMB = (384, 216)  # each thumbnail is fitted (letterboxed) into a 16:9 box
PAD = 20
HEADER_H = 96
LINE_H = 21
TEXT_H = 4 * LINE_H + 12  # under each thumbnail: id, two caption lines, facts
COLUMNS = 4
QUALITY = 90
BACKGROUND = (24, 24, 27)
TILE = (39, 39, 44)
TEXT = (236, 236, 240)
MUTED = (160, 160, 170)
WARN = (240, 180, 90)
PREVIEW = (120, 200, 255)


class SheetTile(BaseModel):
    model_config = ConfigDict(frozen=True)

    shot_id: str
    index: int  # from 0
    caption: str | None = None
    duration_s: float | None = None
    generator: str | None = None
    cost_usd: float | None = None
    thumbnail: Path | None = None  # None: nothing to show yet
    note: str | None = None  # e.g. "not generated yet", shown instead of a picture


@cache
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(resources.files("shotline") / "fonts" / name), size)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int) -> str:
    """`text` cut with an ellipsis to fit `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int, lines: int) -> list[str]:
    """Up to `lines` lines of `text` broken at spaces, the last one cut with an ellipsis if need be."""
    words, out, line = text.split(), [], ""
    for i, word in enumerate(words):
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) <= width or not line:
            line = candidate
            continue
        out.append(line)
        line = word
        if len(out) == lines - 1:
            return [*out, _fit(draw, " ".join([line, *words[i + 1 :]]), font, width)]
    return [*out, _fit(draw, line, font, width)] if line else out


def render_contact_sheet(
    title: str, storyboard_id: str, tiles: list[SheetTile], out: Path, *, columns: int = COLUMNS
) -> dict[str, Any]:
    """Draw the sheet to `out` (JPEG, written atomically); returns what was drawn."""
    if not tiles:
        raise ValueError(f"storyboard {storyboard_id!r}: a contact sheet needs at least one shot")
    tiles = sorted(tiles, key=lambda t: t.index)
    cols = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    f_title, f_sub, f_id, f_text = _font(30, True), _font(17), _font(17, True), _font(15)
    line_h, header_h = LINE_H, HEADER_H
    tile_w, tile_h = THUMB[0], THUMB[1] + TEXT_H
    width = PAD + cols * (tile_w + PAD)
    height = header_h + rows * (tile_h + PAD) + PAD

    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    known = [t for t in tiles if t.duration_s is not None]
    cost = sum(t.cost_usd or 0.0 for t in tiles)
    summary = (
        f"{storyboard_id}  ·  {len(tiles)} shots  ·  {sum(t.duration_s or 0.0 for t in known):.1f} s"
        f"  ·  ${cost:.2f} generation"
    )
    if len(known) < len(tiles):
        summary += f"  ·  {len(tiles) - len(known)} not ready"
    draw.text((PAD, PAD), _fit(draw, title, f_title, width - 2 * PAD), font=f_title, fill=TEXT)
    draw.text((PAD, PAD + 44), _fit(draw, summary, f_sub, width - 2 * PAD), font=f_sub, fill=MUTED)

    for n, tile in enumerate(tiles):
        x = PAD + (n % cols) * (tile_w + PAD)
        y = header_h + (n // cols) * (tile_h + PAD)
        draw.rectangle((x, y, x + tile_w - 1, y + tile_h - 1), fill=TILE)
        if tile.thumbnail is not None:
            with Image.open(tile.thumbnail) as im:
                pic = ImageOps.contain(im.convert("RGB"), THUMB, Image.Resampling.LANCZOS)
            sheet.paste(pic, (x + (THUMB[0] - pic.width) // 2, y + (THUMB[1] - pic.height) // 2))
        else:
            note = tile.note or "not generated yet"
            w = draw.textlength(note, font=f_sub)
            draw.text((x + (THUMB[0] - w) / 2, y + THUMB[1] / 2 - 10), note, font=f_sub, fill=WARN)
        ty = y + THUMB[1] + 8
        inner = tile_w - 20
        draw.text((x + 10, ty), _fit(draw, f"{tile.index + 1}  {tile.shot_id}", f_id, inner), font=f_id, fill=TEXT)
        caption = _wrap(draw, tile.caption, f_text, inner, 2) if tile.caption else ["(no caption)"]
        for i, line in enumerate(caption):
            draw.text((x + 10, ty + line_h * (i + 1)), line, font=f_text, fill=TEXT if tile.caption else MUTED)
        facts = [
            f"{tile.duration_s:.1f} s" if tile.duration_s is not None else "– s",
            tile.generator or "–",
            f"${tile.cost_usd:.2f}" if tile.cost_usd is not None else "$–",
        ]
        colour = PREVIEW if tile.generator == "preview" else MUTED
        draw.text((x + 10, ty + line_h * 3), _fit(draw, "  ·  ".join(facts), f_text, inner), font=f_text, fill=colour)

    with atomic_path(out) as part:
        sheet.save(part, format="JPEG", quality=QUALITY, optimize=True)
    return {
        "width": width,
        "height": height,
        "columns": cols,
        "rows": rows,
        "shots": [t.shot_id for t in tiles],
        "missing": [t.shot_id for t in tiles if t.thumbnail is None],
        "quality": QUALITY,
    }
