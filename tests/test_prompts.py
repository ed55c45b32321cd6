from pathlib import Path

import pytest

from shotline.errors import InputError
from shotline.prompts import MAX_PROMPT_CHARS, render_prompt
from shotline.storyboard import load_storyboard
from tests.storyboard_factory import write_storyboard


def board(tmp_path: Path, prompt: str | None = None, template: str | None = None, vars: dict | None = None):
    shot: dict = {"id": "s01", "image": "a.png", "vars": vars or {}}
    templates = {}
    if prompt is not None:
        shot["prompt"] = prompt
    if template is not None:
        shot["template"] = "t"
        templates["t"] = template
    folder = write_storyboard(
        tmp_path,
        {"id": "sb", "vars": {"style": "noir"}, "shots": [shot]},
        images={"a.png": (640, 360)},
        templates=templates,
    )
    sb = load_storyboard(folder)
    return sb, sb.shots[0]


def test_inline_prompt_renders_with_storyboard_and_shot_vars(tmp_path: Path) -> None:
    sb, shot = board(tmp_path, prompt="a {{ thing }},\n   {{ style }}", vars={"thing": "boat"})
    rendered = render_prompt(sb, shot)
    assert rendered.text == "a boat, noir"
    assert rendered.template_name is None and len(rendered.template_sha256) == 64


def test_template_file_renders(tmp_path: Path) -> None:
    sb, shot = board(tmp_path, template="{{ thing | upper }} in {{ style }}", vars={"thing": "gull"})
    rendered = render_prompt(sb, shot)
    assert rendered.text == "GULL in noir" and rendered.template_name == "t"


def test_missing_variable_is_named(tmp_path: Path) -> None:
    sb, shot = board(tmp_path, prompt="a {{ subjekt }}")
    with pytest.raises(InputError) as info:
        render_prompt(sb, shot)
    assert "'subjekt' is not defined" in str(info.value)
    assert info.value.storyboard == "sb" and info.value.shot == "s01" and info.value.field == "prompt"


def test_sandbox_refuses_python_internals(tmp_path: Path) -> None:
    sb, shot = board(tmp_path, prompt="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(InputError, match="sandbox"):
        render_prompt(sb, shot)


def test_empty_and_overlong_prompts_refused(tmp_path: Path) -> None:
    sb, shot = board(tmp_path, prompt="{{ '' }}   ")
    with pytest.raises(InputError, match="empty"):
        render_prompt(sb, shot)
    sb, shot = board(tmp_path / "b", prompt="{% for i in range(5000) %}word {% endfor %}")
    with pytest.raises(InputError, match=str(MAX_PROMPT_CHARS)):
        render_prompt(sb, shot)
