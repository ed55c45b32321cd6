"""Property tests of the storyboard loader: whatever storyboard.yaml holds, loading it either gives a valid
storyboard or raises the project's own StoryboardError, listing problems that each name the storyboard.
Never another exception, never a hang."""

from __future__ import annotations

import contextlib
import math
import shutil
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shotline.errors import InputError, StoryboardError
from shotline.prompts import render_prompt
from shotline.storyboard import STORYBOARD_FILE, Storyboard, inspect_storyboard, load_storyboard
from testkit.storyboard_factory import write_image

FOLDER = "prop"
SHOT_FIELDS = [
    "id",
    "image",
    "prompt",
    "template",
    "vars",
    "caption",
    "trim",
    "duration",
    "resolution",
    "format",
    "fit",
    "fade",
    "loudness_lufs",
]
TOP_FIELDS = ["id", "title", "defaults", "vars", "shots", "reel"]
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="storyboard-props-"))
    board = root / FOLDER
    write_image(board / "images" / "ok.png", (320, 320))
    (board / "templates").mkdir()
    (board / "templates" / "t.j2").write_text("a {{ subject }}")
    try:
        yield board
    finally:
        shutil.rmtree(root, ignore_errors=True)


def load(folder: Path, data: bytes) -> Storyboard | None:
    (folder / STORYBOARD_FILE).write_bytes(data)
    try:
        storyboard = load_storyboard(folder)
    except StoryboardError as exc:
        assert exc.problems, "a StoryboardError lists at least one problem"
        for problem in exc.problems:
            assert isinstance(problem, InputError) and problem.detail
            assert problem.storyboard, f"problem without a storyboard: {problem}"
        assert str(exc)
        _, problems = inspect_storyboard(folder)
        assert [str(p) for p in problems] == [str(p) for p in exc.problems]
        return None
    # A storyboard that loads renders its prompts without anything but InputError.
    for shot in storyboard.shots:
        with contextlib.suppress(InputError):
            render_prompt(storyboard, shot)
    return storyboard


# --- any text, any bytes ----------------------------------------------------------------------------------


@PROPERTY
@given(text=st.text(max_size=400))
def test_any_text(folder: Path, text: str) -> None:
    load(folder, text.encode("utf-8", errors="surrogatepass"))


@PROPERTY
@given(data=st.binary(max_size=400))
def test_any_bytes(folder: Path, data: bytes) -> None:
    load(folder, data)


YAML_ALPHABET = string.ascii_letters + string.digits + " -:[]{}&*!|>'\"#%@`,?\n\t.\\"


@PROPERTY
@given(text=st.text(alphabet=YAML_ALPHABET, max_size=300))
def test_yaml_punctuation_soup(folder: Path, text: str) -> None:
    load(folder, text.encode())


# --- almost-right storyboards -----------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "images/ok.png",
            "../x.png",
            "/etc/passwd",
            "https://169.254.169.254/",
            "t",
            "480p",
            "720p",
            "1080p",
            "cover",
            "portrait",
            "crossfade",
            "s01",
            "Bad_Id",
            "reel",
            "{{ x }}",
            "{{ ''.__class__ }}",
            "a__b",
            "",
            "templates/../../x",
            "images/ok.png\x00.txt",
            "images",
            "images/",
            "./images/ok.png",
            "images//ok.png",
            "s3://b/k.png",
            "ftp://h/x",
        ]
    ),
)
numbers = st.one_of(st.floats(), st.integers(min_value=-5, max_value=20), st.booleans())
# values a field is likely to meet: near-misses of the right type
likely = {
    "trim": st.lists(numbers, max_size=3),
    "duration": numbers,
    "fade": numbers,
    "loudness_lufs": numbers,
    "image": st.text(max_size=20).map(lambda t: "images/" + t),
    "template": st.text(max_size=12),
    "vars": st.dictionaries(st.text(max_size=6), scalars, max_size=3),
}
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(SHOT_FIELDS + TOP_FIELDS), st.text(max_size=8)), inner, max_size=4),
    ),
    max_leaves=12,
)


@st.composite
def shots(draw: st.DrawFn) -> dict[str, Any]:
    shot: dict[str, Any] = {
        "id": "s01",
        "image": "images/ok.png",
        "prompt": "a {{ subject }}",
        "vars": {"subject": "boat"},
    }
    for name in draw(st.lists(st.sampled_from([*SHOT_FIELDS, "captoin", "promt"]), max_size=4, unique=True)):
        shot[name] = draw(st.one_of(likely[name], values) if name in likely else values)
    for name in draw(st.lists(st.sampled_from(list(shot)), max_size=2, unique=True)):
        shot.pop(name, None)
    return shot


@st.composite
def storyboards(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {"id": FOLDER, "shots": draw(st.lists(shots(), min_size=0, max_size=3))}
    for name in draw(st.lists(st.sampled_from([*TOP_FIELDS, "titel"]), max_size=3, unique=True)):
        data[name] = draw(values)
    return data


@PROPERTY
@given(data=storyboards())
def test_almost_right_storyboards(folder: Path, data: dict[str, Any]) -> None:
    storyboard = load(folder, yaml.safe_dump(data, allow_unicode=True).encode())
    if storyboard is not None:  # what loads is sane
        for shot in storyboard.shots:
            assert 1 <= shot.duration <= 15 and shot.resolution in ("480p", "720p")
            assert math.isfinite(shot.fade) and shot.fade * 2 <= shot.kept_duration
            if shot.trim is not None:
                assert 0 <= shot.trim[0] < shot.trim[1] <= shot.duration


@PROPERTY
@given(data=storyboards(), cut=st.integers(min_value=0, max_value=10_000), junk=st.text(max_size=5))
def test_damaged_storyboards(folder: Path, data: dict[str, Any], cut: int, junk: str) -> None:
    text = yaml.safe_dump(data, allow_unicode=True)
    at = cut % (len(text) + 1)
    load(folder, (text[:at] + junk + text[at + len(junk) :]).encode())


def test_the_properties_reach_a_valid_storyboard(folder: Path) -> None:
    """The generators above are not all rejects: the unmodified shape loads."""
    data = {
        "id": FOLDER,
        "shots": [{"id": "s01", "image": "images/ok.png", "prompt": "a {{ subject }}", "vars": {"subject": "boat"}}],
    }
    assert load(folder, yaml.safe_dump(data).encode()) is not None
