"""Captions in any script: the shipped fonts, per-character fallback, CJK wrapping, nothing clipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shotline.media import fonts
from shotline.media.captions import render_caption
from shotline.media.postprocess import FinishSpec, render_final
from testkit.mediakit import gray_frames, make_clip

LONG_CJK = (
    "夜明けの港に漁船が帰ってくる。カモメが網の上で騒ぎ、「今日の光は最高だ」と誰もが言う。"
    "清晨的港口，渔船归来，海鸥在渔网上争吵。새벽 항구에 어선이 돌아옵니다."
)


def test_the_fonts_and_their_licences_are_shipped() -> None:
    folder = fonts.font_path().parent
    for name in fonts.CHAIN:
        assert fonts.font_path(name).stat().st_size > 100_000
    licences = sorted(p.name for p in folder.glob("LICENSE-*"))
    assert licences == ["LICENSE-DejaVu.txt", "LICENSE-WenQuanYi-MicroHei.txt"]
    assert "Apache License" in (folder / "LICENSE-WenQuanYi-MicroHei.txt").read_text()


def test_each_character_goes_to_a_font_that_has_it() -> None:
    assert fonts.runs("Ça déjà vu") == [(fonts.PRIMARY, "Ça déjà vu")]
    assert fonts.runs("東京 Tokyo 한글") == [
        ("wqy-microhei.ttc", "東京 "),
        (fonts.PRIMARY, "Tokyo "),
        ("wqy-microhei.ttc", "한글"),
    ]
    for ch in "漢字かなカナ한글":
        assert fonts.font_for(ch) == "wqy-microhei.ttc"
    assert fonts.missing_glyphs("ok \U0001d11e") == ["\U0001d11e"]  # a musical symbol no shipped font has


def test_long_cjk_caption_is_wrapped_inside_the_frame(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "grey.mp4", size=(480, 854), duration=0.5, video="color=c=0x606060")
    out = tmp_path / "out.mp4"
    result = render_final(
        src, FinishSpec(format="portrait", resolution="480p", fade=0, caption=LONG_CJK, x264_preset="veryfast"),
        out, tmp_path / "scratch",
    )  # fmt: skip
    layout = next(s for s in result.steps if s["step"] == "caption")
    assert layout["fonts"] == ["DejaVuSans-Bold.ttf", "wqy-microhei.ttc"] and layout["missing_glyphs"] == []
    assert len(layout["lines"]) >= 3 and not layout["truncated"]
    assert "".join(layout["lines"]).replace(" ", "") == LONG_CJK.replace(" ", "")  # nothing lost
    assert not any(line.startswith(("。", "、", "，", "」")) for line in layout["lines"])  # kinsoku
    w, h = 480, 854
    frame = gray_frames(out)[6]
    white = np.argwhere(frame > 200)
    assert len(white) > 2000
    (top, left), (bottom, right) = white.min(axis=0), white.max(axis=0)
    assert left >= 0.05 * w - 1 and right <= 0.95 * w + 1  # inside the title-safe width
    assert top >= h / 2 and bottom <= 0.95 * h + 1
    # Inside the box, every line has ink: no line was drawn off the box.
    box = frame[layout["y"] : layout["y"] + layout["height"], layout["x"] : layout["x"] + layout["width"]]
    rows_with_ink = np.flatnonzero((box > 200).any(axis=1))
    assert rows_with_ink.min() > 2 and rows_with_ink.max() < layout["height"] - 3


def test_cjk_glyphs_are_real_not_missing_boxes(tmp_path: Path) -> None:
    def ink(text: str) -> bytes:
        render_caption(text, 854, 480, tmp_path / "c.png")
        mask = np.asarray(Image.open(tmp_path / "c.png"))[..., 0] > 200
        assert mask.sum() > 50
        return mask.tobytes() + bytes(mask.shape)

    tofu = ink("\U0001d11e")  # no shipped font has it: drawn as the missing-glyph box
    drawn = {ink(ch) for ch in "港船光한"}
    assert len(drawn) == 4 and tofu not in drawn


@pytest.mark.parametrize("text", ["ÅÉÎÕÜ Ça déjà vu", "gjpqy Ÿ ŠŽ ąę", "Ωμέγα Жёлтый"])
def test_accents_and_descenders_stay_inside_the_box(tmp_path: Path, text: str) -> None:
    layout = render_caption(text, 854, 480, tmp_path / "c.png")
    assert layout.fonts == ["DejaVuSans-Bold.ttf"]
    ink = np.argwhere(np.asarray(Image.open(tmp_path / "c.png"))[..., :3].min(axis=2) > 200)
    assert ink[:, 0].min() > 2 and ink[:, 0].max() < layout.height - 3
    assert ink[:, 1].min() > 2 and ink[:, 1].max() < layout.width - 3
