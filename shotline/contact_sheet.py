"""A storyboard's contact sheet: one image with every shot's thumbnail, id, caption, duration, generator,
cost and review state, in shot order, under a header with the storyboard's title and totals, so it can be
reviewed at a glance. When a shot has several takes, the sheet has one row per shot with its takes side by
side (the current one outlined), each with its own state.

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
TEXT_H = 5 * LINE_H + 12  # under each thumbnail: id, two caption lines, facts, review state
COLUMNS = 4
QUALITY = 90
BACKGROUND = (24, 24, 27)
TILE = (39, 39, 44)
TEXT = (236, 236, 240)
MUTED = (160, 160, 170)
WARN = (240, 180, 90)
PREVIEW = (120, 200, 255)
APPROVED = (120, 210, 140)
REJECTED = (240, 110, 110)
OUTLINE = 3  # the current take's frame, in a row of takes


class SheetTake(BaseModel):
    """Another take of a shot, drawn beside its current one."""

    model_config = ConfigDict(frozen=True)

    take: int
    review: str | None = None  # "approved", "awaiting review", "rejected: <note>"
    duration_s: float | None = None
    generator: str | None = None
    cost_usd: float | None = None
    thumbnail: Path | None = None


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
    take: int | None = None  # of what is shown
    review: str | None = None  # its review state, as SheetTake.review
    other_takes: list[SheetTake] = []  # the shot's other published takes

    def cells(self) -> list[SheetTake | None]:
        """The shot's takes in take order; None stands for this tile's own (current) one."""
        own = self.take if self.take is not None else 0
        cells: list[tuple[int, SheetTake | None]] = [(t.take, t) for t in self.other_takes if t.take != own]
        return [c for _, c in sorted([*cells, (own, None)], key=lambda c: c[0])]


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
    by_take = any(len(t.cells()) > 1 for t in tiles)
    if by_take:  # one row per shot, its takes side by side
        places = [(tile, cell, c, r) for r, tile in enumerate(tiles) for c, cell in enumerate(tile.cells())]
        cols, rows = max(len(t.cells()) for t in tiles), len(tiles)
    else:
        cols = max(1, min(columns, len(tiles)))
        rows = math.ceil(len(tiles) / cols)
        places = [(tile, None, n % cols, n // cols) for n, tile in enumerate(tiles)]
    f_title, f_sub = _font(30, True), _font(17)
    tile_w, tile_h = THUMB[0], THUMB[1] + TEXT_H
    width = PAD + cols * (tile_w + PAD)
    height = HEADER_H + rows * (tile_h + PAD) + PAD

    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, PAD), _fit(draw, title, f_title, width - 2 * PAD), font=f_title, fill=TEXT)
    summary = _summary(storyboard_id, tiles)
    draw.text((PAD, PAD + 44), _fit(draw, summary, f_sub, width - 2 * PAD), font=f_sub, fill=MUTED)
    for tile, other, col, row in places:
        x, y = PAD + col * (tile_w + PAD), HEADER_H + row * (tile_h + PAD)
        _draw_cell(sheet, draw, (x, y), tile, other, outline=by_take and other is None and len(tile.cells()) > 1)

    with atomic_path(out) as part:
        sheet.save(part, format="JPEG", quality=QUALITY, optimize=True)
    return {
        "width": width,
        "height": height,
        "columns": cols,
        "rows": rows,
        "shots": [t.shot_id for t in tiles],
        "missing": [t.shot_id for t in tiles if t.thumbnail is None],
        "takes": {t.shot_id: [c.take if c else t.take for c in t.cells()] for t in tiles},
        "quality": QUALITY,
    }


def _summary(storyboard_id: str, tiles: list[SheetTile]) -> str:
    known = [t for t in tiles if t.duration_s is not None]
    current = sum(t.cost_usd or 0.0 for t in tiles)
    every_take = current + sum(o.cost_usd or 0.0 for t in tiles for o in t.other_takes if o.take != t.take)
    summary = (
        f"{storyboard_id}  ·  {len(tiles)} shots  ·  {sum(t.duration_s or 0.0 for t in known):.1f} s"
        f"  ·  ${current:.2f} generation"
    )
    if every_take > current:
        summary += f" (${every_take:.2f} with every take)"
    if len(known) < len(tiles):
        summary += f"  ·  {len(tiles) - len(known)} not ready"
    for state in ("approved", "awaiting review", "rejected"):
        if n := sum(bool(t.review and t.review.startswith(state)) for t in tiles):
            summary += f"  ·  {n} {state}"
    return summary


def _review_colour(review: str) -> tuple[int, int, int]:
    if review.startswith("approved"):
        return APPROVED
    if review.startswith("rejected"):
        return REJECTED
    return WARN


def _draw_cell(
    sheet: Image.Image,
    draw: ImageDraw.ImageDraw,
    at: tuple[int, int],
    tile: SheetTile,
    other: SheetTake | None,
    *,
    outline: bool,
) -> None:
    """One take of a shot: `other`, or the tile's own when None."""
    f_sub, f_id, f_text = _font(17), _font(17, True), _font(15)
    x, y = at
    tile_w, tile_h = THUMB[0], THUMB[1] + TEXT_H
    thumbnail = tile.thumbnail if other is None else other.thumbnail
    take = tile.take if other is None else other.take
    review = tile.review if other is None else other.review
    duration, generator = (tile.duration_s, tile.generator) if other is None else (other.duration_s, other.generator)
    cost = tile.cost_usd if other is None else other.cost_usd
    draw.rectangle((x, y, x + tile_w - 1, y + tile_h - 1), fill=TILE)
    if thumbnail is not None:
        with Image.open(thumbnail) as im:
            pic = ImageOps.contain(im.convert("RGB"), THUMB, Image.Resampling.LANCZOS)
        sheet.paste(pic, (x + (THUMB[0] - pic.width) // 2, y + (THUMB[1] - pic.height) // 2))
    else:
        note = (tile.note if other is None else None) or "not generated yet"
        w = draw.textlength(note, font=f_sub)
        draw.text((x + (THUMB[0] - w) / 2, y + THUMB[1] / 2 - 10), note, font=f_sub, fill=WARN)
    if outline:
        draw.rectangle((x, y, x + tile_w - 1, y + tile_h - 1), outline=TEXT, width=OUTLINE)
    ty = y + THUMB[1] + 8
    inner = tile_w - 20
    head = f"{tile.index + 1}  {tile.shot_id}" + (f"  ·  take {take}" if take is not None else "")
    if outline:
        head += "  (current)"
    draw.text((x + 10, ty), _fit(draw, head, f_id, inner), font=f_id, fill=TEXT)
    caption = _wrap(draw, tile.caption, f_text, inner, 2) if tile.caption else ["(no caption)"]
    for i, line in enumerate(caption):
        draw.text((x + 10, ty + LINE_H * (i + 1)), line, font=f_text, fill=TEXT if tile.caption else MUTED)
    facts = [
        f"{duration:.1f} s" if duration is not None else "– s",
        generator or "–",
        f"${cost:.2f}" if cost is not None else "$–",
    ]
    colour = PREVIEW if generator == "preview" else MUTED
    draw.text((x + 10, ty + LINE_H * 3), _fit(draw, "  ·  ".join(facts), f_text, inner), font=f_text, fill=colour)
    if review:
        draw.text(
            (x + 10, ty + LINE_H * 4), _fit(draw, review, f_text, inner), font=f_text, fill=_review_colour(review)
        )
