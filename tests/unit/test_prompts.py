from pathlib import Path

import pytest

from shotline.errors import InputError
from shotline.prompts import MAX_PROMPT_CHARS, render_prompt
from shotline.storyboard import load_storyboard
from testkit.storyboard_factory import write_storyboard


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


@pytest.mark.parametrize(
    ("prompt", "needle"),
    [
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "10,000 loop iterations"),
        ("{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}", "10,000"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recurses too deeply"),
        ("{{ 'x' * 1000000000 }}", "repeating a value"),
        ("{{ ((10 ** 64) ** 64) ** 64 }}", "too large a number"),
        ("{{ 'x' | center(1000000000) }}", "too large for a prompt template"),
        ("{{ 'x'.ljust(1000000000) }}", "too large for a prompt template"),
        ("{{ '{:>999999999}'.format(1) }}", "str.format is not allowed"),
        ("{{ '%999999999s' % 'x' }}", "printf-style"),
        ("{{ range(10 ** 12) | list }}", "too large"),
        ("{{ lipsum(100000) }}", "'lipsum' is not defined"),
        ("{{ cycler.__init__.__globals__ }}", "sandbox forbids"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{% include 'other.j2' %}", "the template failed"),
    ],
)
def test_templates_cannot_hang_or_exhaust_the_worker(tmp_path: Path, prompt: str, needle: str) -> None:
    sb, shot = board(tmp_path, prompt=prompt)
    with pytest.raises(InputError, match=needle) as info:
        render_prompt(sb, shot)
    assert (info.value.storyboard, info.value.shot, info.value.field) == ("sb", "s01", "prompt")


def test_ordinary_templates_still_work(tmp_path: Path) -> None:
    prompt = (
        "{{ thing | upper }}, {{ style | default('plain') }}; "
        "{% for w in words %}{{ w | title }}{{ ', ' if not loop.last }}{% endfor %}; "
        "{{ 8000000000 | string }} {{ 2 ** 10 }} {{ 'ab' * 3 }} {{ (count * 2) | round }}"
    )
    sb, shot = board(tmp_path, prompt=prompt, vars={"thing": "boat", "words": ["red", "sky"], "count": 2.5})
    assert render_prompt(sb, shot).text == "BOAT, noir; Red, Sky; 8000000000 1024 ababab 5.0"


def test_template_files_are_read_carefully(tmp_path: Path) -> None:
    sb, shot = board(tmp_path, template="{{ style }}")
    tpl = sb.template_path("t")
    tpl.write_bytes("café {{ style }}".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8 text"):
        render_prompt(sb, shot)
    tpl.write_text("x" * (64 * 1024 + 1))
    with pytest.raises(InputError, match="larger than 65,536 bytes"):
        render_prompt(sb, shot)
    outside = tmp_path / "outside.j2"
    outside.write_text("{{ style }}")
    tpl.unlink()
    tpl.symlink_to(outside)
    with pytest.raises(InputError, match="outside the storyboard folder") as info:
        render_prompt(sb, shot)
    assert info.value.field == "template"
