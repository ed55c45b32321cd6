from pathlib import Path

import pytest

from shotline.errors import StoryboardError
from shotline.prompts import render_prompt
from shotline.storyboard import load_storyboard, partition_key, split_partition_key
from tests.storyboard_factory import tiny_storyboard, write_storyboard

DEMO = Path(__file__).resolve().parents[1] / "storyboards" / "harbor-teaser"


def base(**shot: object) -> dict:
    s = {"id": "s01", "image": "images/a.png", "prompt": "a {{ thing }}", "vars": {"thing": "boat"}}
    s.update(shot)
    return {"id": "sb", "shots": [s]}


def load_error(tmp_path: Path, data: dict, **kw: object) -> StoryboardError:
    folder = write_storyboard(tmp_path, data, images={"images/a.png": (640, 360)}, **kw)
    with pytest.raises(StoryboardError) as info:
        load_storyboard(folder)
    return info.value


def test_demo_storyboard_loads_with_inheritance_and_overrides() -> None:
    sb = load_storyboard(DEMO)
    assert sb.id == "harbor-teaser"
    assert len(sb.shots) >= 4
    market = sb.shot("s03-market")
    assert market.duration == 5 and market.trim == (0.5, 4.5) and market.template == "cinematic"
    lighthouse = sb.shot("s02-lighthouse")
    assert lighthouse.fit == "contain" and lighthouse.resolution == "720p"
    boats = sb.shot("s01-boats")
    assert boats.template is None and boats.prompt is not None
    assert boats.vars["style"] == sb.vars["style"]  # storyboard vars reach every shot


def test_every_demo_prompt_renders() -> None:
    sb = load_storyboard(DEMO)
    for shot in sb.shots:
        text = render_prompt(sb, shot).text
        assert "{{" not in text and shot.vars["subject"] in text


def test_defaults_apply_and_shot_overrides(tmp_path: Path) -> None:
    folder = tiny_storyboard(tmp_path, duration=3)
    sb = load_storyboard(folder)
    assert [s.duration for s in sb.shots] == [3, 3]
    assert sb.shots[0].resolution == "480p" and sb.shots[0].format == "landscape"


@pytest.mark.parametrize(
    ("shot", "field", "needle"),
    [
        ({"duration": 16}, "duration", "less than or equal to 15"),
        ({"duration": 0}, "duration", "greater than or equal to 1"),
        ({"resolution": "1080p"}, "resolution", "'480p' or '720p'"),
        ({"format": "widescreen"}, "format", "landscape"),
        ({"id": "Bad_Id"}, "id", "not a slug"),
        ({"trim": [1.0, 9.0], "duration": 5}, "trim", "past the clip's duration"),
        ({"image": "../escape.png"}, "image", "stay inside"),
        ({"image": "images/missing.png"}, "image", "not found"),
        ({"image": "ftp://host/x.png"}, "image", "only a relative path"),
        ({"prompt": None, "template": "nope"}, "template", "templates/nope.j2 not found"),
        ({"captoin": "x"}, "captoin", "did you mean 'caption'"),
    ],
)
def test_bad_shot_names_storyboard_shot_and_field(tmp_path: Path, shot: dict, field: str, needle: str) -> None:
    data = base(**shot)
    if shot.get("prompt", "x") is None:
        del data["shots"][0]["prompt"]
    err = load_error(tmp_path, data)
    text = str(err)
    assert "storyboard.yaml" in text and "'sb'" in text
    assert f"field '{field}'" in text, text
    assert needle in text, text


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    data = base(duration=99)
    data["shots"].append({"id": "s01", "image": "images/a.png", "prompt": "x"})
    data["shots"].append({"id": "s03", "image": "images/a.png"})
    err = load_error(tmp_path, data)
    assert len(err.problems) >= 1
    data["shots"][0]["duration"] = 5
    err = load_error(tmp_path, data)
    messages = [str(p) for p in err.problems]
    assert any("duplicate shot id" in m for m in messages)
    assert any("no prompt" in m and "'s03'" in m for m in messages)


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    folder = tmp_path / "sb"
    folder.mkdir()
    (folder / "storyboard.yaml").write_text("id: sb\nshots:\n  - id: s01\n    image: [unclosed\n")
    with pytest.raises(StoryboardError, match=r"line \d+, column \d+"):
        load_storyboard(folder)


def test_id_must_match_folder(tmp_path: Path) -> None:
    folder = write_storyboard(tmp_path, base(), images={"images/a.png": (640, 360)})
    folder.rename(tmp_path / "other")
    with pytest.raises(StoryboardError, match="differs from its folder name"):
        load_storyboard(tmp_path / "other")


def test_partition_keys_round_trip() -> None:
    assert split_partition_key(partition_key("harbor-teaser", "s01-boats")) == ("harbor-teaser", "s01-boats")


def test_spec_hash_changes_with_image_bytes_and_vars(tmp_path: Path) -> None:
    folder = tiny_storyboard(tmp_path)
    sb = load_storyboard(folder)
    before = [sb.shot_spec_hash(s) for s in sb.shots]
    from tests.storyboard_factory import write_image

    write_image(folder / "images" / "s01.png", colour=(200, 10, 10))
    sb2 = load_storyboard(folder)
    after = [sb2.shot_spec_hash(s) for s in sb2.shots]
    assert after[0] != before[0] and after[1] == before[1]
