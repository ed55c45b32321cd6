"""`shotline validate`: every offline check, every problem of every shot listed in one run, exit code 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from shotline.cli import main
from testkit.storyboard_factory import write_storyboard

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def strict_url_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHOTLINE_ALLOW_HOSTS", "SHOTLINE_ALLOW_HTTP"):
        monkeypatch.delenv(name, raising=False)


def test_the_demo_storyboard_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(REPO / "storyboards" / "harbor-teaser")]) == 0
    assert capsys.readouterr().out.strip().endswith("shots, ok")


def test_every_problem_is_listed_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shots = [
        {"id": "s01", "image": "images/ok.png", "prompt": "fine {{ subject }}", "vars": {"subject": "boats"}},
        {"id": "s02", "image": "images/ok.png", "prompt": "a {{ subjekt }}"},  # template: undefined
        {"id": "s03", "image": "images/text.png", "prompt": "x"},  # image: not an image
        {"id": "s04", "image": "https://169.254.169.254/latest/meta-data/", "prompt": "x"},  # URL refused
        {"id": "s05", "image": "images/small.png", "prompt": "x", "resolution": "1080p"},  # hides the image's
        {"id": "s06", "image": "images/missing.png", "prompt": "{{ ''.__class__ }}"},  # two problems
        {"id": "s07", "image": "https://cdn.example.invalid/still.png", "prompt": "fine"},  # fine: not fetched
    ]
    folder = write_storyboard(
        tmp_path, {"id": "many", "shots": shots}, images={"images/ok.png": (640, 360), "images/small.png": (64, 64)}
    )
    (folder / "images" / "text.png").write_text("not pixels")
    assert main(["validate", str(folder)]) == 1
    err = capsys.readouterr().err
    expected = [
        ("s02", "prompt", "variable 'subjekt' is not defined"),
        ("s03", "image", "not an image"),
        ("s04", "image", "cloud metadata address"),
        ("s05", "resolution", "'480p' or '720p'"),
        ("s06", "image", "image file not found"),
        ("s06", "prompt", "sandbox forbids"),  # a shot's problems are all listed
    ]
    lines = err.splitlines()
    assert lines[0].endswith("storyboard.yaml: 6 problem(s)"), err
    for shot, field, needle in expected:
        assert any(f"shot '{shot}', field '{field}'" in line and needle in line for line in lines), (shot, err)
    assert "'s01'" not in err and "'s07'" not in err


def test_a_shot_whose_fields_are_invalid_is_checked_further_once_they_are_fixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shots = [{"id": "s05", "image": "images/small.png", "prompt": "x"}]  # s05 above, resolution fixed
    folder = write_storyboard(tmp_path, {"id": "next", "shots": shots}, images={"images/small.png": (64, 64)})
    assert main(["validate", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "shot 's05', field 'image': image is 64x64; the short side must be at least 256 px" in err


def test_several_storyboards_and_the_url_policy_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    internal = {"id": "s01", "image": "http://10.0.0.5/still.png", "prompt": "x"}
    folder = write_storyboard(tmp_path, {"id": "internal", "shots": [internal]})
    assert main(["validate", str(folder), str(REPO / "storyboards" / "harbor-teaser")]) == 1
    out, err = capsys.readouterr()
    assert "plain http:// URLs are refused" in err and "harbor-teaser" in out
    monkeypatch.setenv("SHOTLINE_ALLOW_HTTP", "1")
    monkeypatch.setenv("SHOTLINE_ALLOW_HOSTS", "10.0.0.0/8")
    assert main(["validate", str(folder)]) == 0
    monkeypatch.setenv("SHOTLINE_ALLOW_HOSTS", "ftp://nope")
    assert main(["validate", str(folder)]) == 1
    assert "SHOTLINE_ALLOW_HOSTS" in capsys.readouterr().err
