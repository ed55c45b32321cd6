"""The contact sheet with takes: one row per shot, its takes side by side in take order (the current one
outlined), each with its review state; without other takes, the grid stays as it was."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from shotline.contact_sheet import HEADER_H, PAD, TEXT_H, THUMB, SheetTake, SheetTile, render_contact_sheet
from tests.integration.test_contact_sheet import close, solid

RED, GREEN, BLUE, YELLOW = (200, 40, 40), (40, 200, 40), (40, 40, 200), (220, 200, 40)


def cell_centre(sheet: Image.Image, row: int, col: int) -> tuple[int, int, int]:
    x = PAD + col * (THUMB[0] + PAD) + THUMB[0] // 2
    y = HEADER_H + row * (THUMB[1] + TEXT_H + PAD) + THUMB[1] // 2
    return sheet.getpixel((x, y))  # type: ignore[return-value]


def test_takes_side_by_side_in_take_order(tmp_path: Path) -> None:
    tiles = [
        SheetTile(
            shot_id="s01",
            index=0,
            caption="Boats",
            duration_s=2.0,
            generator="fal",
            cost_usd=0.17,
            thumbnail=solid(tmp_path / "take2.jpg", GREEN),
            take=2,
            review="approved by ana",
            other_takes=[
                SheetTake(take=3, review="awaiting review", thumbnail=solid(tmp_path / "take3.jpg", BLUE)),
                SheetTake(take=1, review="rejected: too dark", thumbnail=solid(tmp_path / "t1.jpg", RED)),
            ],
        ),
        SheetTile(
            shot_id="s02",
            index=1,
            caption="Gulls",
            thumbnail=solid(tmp_path / "s02.jpg", YELLOW),
            take=1,
            review="awaiting review",
        ),
    ]
    drawn = render_contact_sheet("Takes", "takes", tiles, tmp_path / "sheet.jpg")
    assert drawn["takes"] == {"s01": [1, 2, 3], "s02": [1]}
    assert (drawn["columns"], drawn["rows"]) == (3, 2)
    with Image.open(tmp_path / "sheet.jpg") as sheet:
        assert sheet.size == (PAD + 3 * (THUMB[0] + PAD), HEADER_H + 2 * (THUMB[1] + TEXT_H + PAD) + PAD)
        assert [close(cell_centre(sheet, 0, c), colour) for c, colour in enumerate((RED, GREEN, BLUE))] == [True] * 3
        assert close(cell_centre(sheet, 1, 0), YELLOW)
        assert not close(cell_centre(sheet, 1, 1), YELLOW)  # s02 has one take: its row has one cell
        # the current take (2, in the middle) is outlined, the others are not
        x, y = PAD + 1 * (THUMB[0] + PAD), HEADER_H + THUMB[1] // 2
        assert min(sheet.getpixel((x + 1, y))) > 200  # type: ignore[arg-type]
        assert close(sheet.getpixel((PAD + 1, y)), RED)  # type: ignore[arg-type]


def test_without_other_takes_the_grid_is_unchanged(tmp_path: Path) -> None:
    tiles = [
        SheetTile(shot_id=f"s{i}", index=i, thumbnail=solid(tmp_path / f"{i}.jpg", c), take=1, review="approved")
        for i, c in enumerate((RED, GREEN, BLUE))
    ]
    drawn = render_contact_sheet("Grid", "grid", tiles, tmp_path / "sheet.jpg", columns=2)
    assert (drawn["columns"], drawn["rows"]) == (2, 2)
    with Image.open(tmp_path / "sheet.jpg") as sheet:
        assert close(cell_centre(sheet, 0, 1), GREEN) and close(cell_centre(sheet, 1, 0), BLUE)
