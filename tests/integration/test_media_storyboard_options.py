"""The storyboard's finishing options (fill, speed, caption placement and timing, logo, music bed) reach the
finish spec, with their files checked when the storyboard loads, before any money is spent."""

from __future__ import annotations

from pathlib import Path

import pytest

from shotline.errors import StoryboardError
from shotline.finishing import expected_final, final_duration, finish_spec_for, with_shot_finishing
from shotline.storyboard import load_storyboard
from testkit.mediakit import make_clip
from testkit.storyboard_factory import write_storyboard


def _storyboard(root: Path, **shot_fields: object) -> Path:
    data = {
        "id": "opts",
        "defaults": {"duration": 4, "resolution": "480p", "fit": "contain", "fill": "blur",
                     "logo": {"image": "brand/logo.png", "position": "top-left", "opacity": 0.6},
                     "music": {"file": "audio/bed.m4a", "level_db": -15}},
        "shots": [{"id": "s01", "image": "images/s01.png", "prompt": "a harbour", "caption": "Dawn",
                   "caption_position": "top", "caption_start": 0.5, "caption_end": 2.0, "speed": 2.0,
                   "trim": [0.0, 3.0], **shot_fields}],
    }  # fmt: skip
    folder = write_storyboard(root, data, images={"images/s01.png": (64, 36), "brand/logo.png": (40, 20)})
    (folder / "audio").mkdir(exist_ok=True)
    make_clip(folder / "audio" / "bed.m4a", size=(16, 16), duration=0.5, audio="tone")
    return folder


def test_storyboard_options_reach_the_finish_spec(tmp_path: Path) -> None:
    storyboard = load_storyboard(_storyboard(tmp_path))
    shot = storyboard.shots[0]
    spec = finish_spec_for(storyboard, shot, generator="preview", model=None, request_id=None)
    spec = with_shot_finishing(spec, storyboard, shot)
    assert (spec.fit, spec.fill, spec.speed, spec.caption_position) == ("contain", "blur", 2.0, "top")
    assert (spec.caption_start, spec.caption_end) == (0.5, 2.0)
    assert spec.logo is not None and spec.logo.path.name == "logo.png" and spec.logo.position == "top-left"
    assert spec.logo.opacity == 0.6
    assert spec.music is not None and spec.music.path.name == "bed.m4a" and spec.music.level_db == -15
    assert final_duration(shot) == 1.5  # 3 s kept, twice as fast
    assert expected_final(shot).duration_s == 1.5 and (expected_final(shot).width, expected_final(shot).height) == (
        854, 480,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"logo": {"image": "brand/missing.png"}}, "logo.image", "logo file not found"),
        ({"music": {"file": "../outside.m4a"}}, "music.file", "'..' is refused"),
        ({"caption_start": 2.0, "caption_end": 1.0}, "caption_end", "must come after caption_start"),
        ({"fill": "purple-ish"}, "fill", "should match pattern"),
        ({"speed": 9}, "speed", "less than or equal to 4"),
    ],
)
def test_bad_options_are_refused_when_the_storyboard_loads(
    tmp_path: Path, fields: dict, field: str, message: str
) -> None:
    with pytest.raises(StoryboardError) as info:
        load_storyboard(_storyboard(tmp_path, **fields))
    problems = [(p.shot, p.field, p.detail) for p in info.value.problems]
    assert any(shot == "s01" and f == field and message in detail for shot, f, detail in problems), problems
