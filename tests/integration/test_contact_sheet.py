"""The contact sheet: every shot in shot order, its thumbnail where it belongs, the same bytes for the same
shots, and a placeholder for a shot that is not ready."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from shotline.contact_sheet import HEADER_H, PAD, TEXT_H, THUMB, SheetTile, render_contact_sheet

COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (220, 200, 40), (200, 40, 200)]


def solid(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (1280, 720)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def centre_of(sheet: Image.Image, n: int, columns: int) -> tuple[int, int, int]:
    x = PAD + (n % columns) * (THUMB[0] + PAD) + THUMB[0] // 2
    y = HEADER_H + (n // columns) * (THUMB[1] + TEXT_H + PAD) + THUMB[1] // 2
    return sheet.getpixel((x, y))  # type: ignore[return-value]


def close(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    return all(abs(x - y) <= 16 for x, y in zip(a, b, strict=True))


def tiles(tmp_path: Path) -> list[SheetTile]:
    out = []
    for i, colour in enumerate(COLOURS):
        size = (720, 1280) if i == 3 else (1280, 720)  # a portrait shot is letterboxed, not stretched
        out.append(
            SheetTile(
                shot_id=f"s{i + 1:02d}",
                index=i,
                caption=f"Caption of shot {i + 1}" * (3 if i == 1 else 1),
                duration_s=4.5,
                generator="fal",
                cost_usd=0.71,
                thumbnail=solid(tmp_path / f"t{i}.jpg", colour, size),
            )
        )
    return out


def test_every_shot_in_shot_order(tmp_path: Path) -> None:
    given = tiles(tmp_path)
    drawn = render_contact_sheet("Harbor", "harbor", list(reversed(given)), tmp_path / "sheet.jpg", columns=3)
    assert drawn["shots"] == [t.shot_id for t in given] and drawn["missing"] == []
    assert (drawn["columns"], drawn["rows"]) == (3, 2)
    with Image.open(tmp_path / "sheet.jpg") as sheet:
        assert sheet.format == "JPEG" and sheet.size == (drawn["width"], drawn["height"])
        for n, colour in enumerate(COLOURS):
            assert close(centre_of(sheet, n, 3), colour), (n, centre_of(sheet, n, 3))
        # the portrait thumbnail is fitted inside its box: its sides show the tile, not the picture
        x = PAD + 0 * (THUMB[0] + PAD) + 10
        y = HEADER_H + 1 * (THUMB[1] + TEXT_H + PAD) + THUMB[1] // 2
        assert not close(sheet.getpixel((x, y)), COLOURS[3])  # type: ignore[arg-type]


def test_same_shots_same_bytes(tmp_path: Path) -> None:
    render_contact_sheet("Harbor", "harbor", tiles(tmp_path), tmp_path / "a.jpg")
    render_contact_sheet("Harbor", "harbor", tiles(tmp_path), tmp_path / "b.jpg")
    assert (tmp_path / "a.jpg").read_bytes() == (tmp_path / "b.jpg").read_bytes()
    changed = [t.model_copy(update={"cost_usd": 1.5}) if t.index == 2 else t for t in tiles(tmp_path)]
    render_contact_sheet("Harbor", "harbor", changed, tmp_path / "c.jpg")
    assert (tmp_path / "c.jpg").read_bytes() != (tmp_path / "a.jpg").read_bytes()


def test_a_shot_not_ready_has_a_placeholder(tmp_path: Path) -> None:
    given = tiles(tmp_path)
    given[1] = SheetTile(shot_id="s02", index=1, caption="Later", note="not published yet")
    drawn = render_contact_sheet("Harbor", "harbor", given, tmp_path / "sheet.jpg", columns=5)
    assert drawn["missing"] == ["s02"]
    with Image.open(tmp_path / "sheet.jpg") as sheet:
        assert not close(centre_of(sheet, 1, 5), COLOURS[1])
        assert close(centre_of(sheet, 2, 5), COLOURS[2])
    with pytest.raises(ValueError, match="at least one shot"):
        render_contact_sheet("Harbor", "harbor", [], tmp_path / "empty.jpg")
