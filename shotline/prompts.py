"""Prompt rendering: Jinja2's sandbox with StrictUndefined, so a template can neither reach Python
internals nor silently drop a missing variable."""

from __future__ import annotations

import re

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from pydantic import BaseModel

from shotline.errors import InputError
from shotline.hashing import sha256_bytes
from shotline.storyboard import Shot, Storyboard

# fal's page sets no limit; xAI's video API documents long prompts. We cap well below anything that would be
# silently truncated, so an accidental loop in a template fails here instead of being billed.
MAX_PROMPT_CHARS = 4000

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


class RenderedPrompt(BaseModel):
    text: str
    template_name: str | None  # None for an inline prompt
    template_source: str
    template_sha256: str
    variables: dict[str, object]


def template_source(storyboard: Storyboard, shot: Shot) -> tuple[str | None, str]:
    if shot.prompt is not None:
        return None, shot.prompt
    assert shot.template is not None
    path = storyboard.template_path(shot.template)
    try:
        return shot.template, path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"cannot read template {path.name}: {exc.strerror}",
            storyboard=storyboard.id,
            shot=shot.id,
            field="template",
        ) from None


def render_prompt(storyboard: Storyboard, shot: Shot) -> RenderedPrompt:
    name, source = template_source(storyboard, shot)
    field = "prompt" if name is None else "template"

    def fail(msg: str) -> InputError:
        return InputError(msg, storyboard=storyboard.id, shot=shot.id, field=field)

    try:
        text = _ENV.from_string(source).render(**shot.vars)
    except UndefinedError as exc:
        missing = re.search(r"'([^']+)' is undefined", str(exc))
        what = f"variable {missing.group(1)!r} is not defined" if missing else str(exc)
        raise fail(f"{what} (define it in the shot's or the storyboard's `vars`)") from None
    except SecurityError as exc:
        raise fail(f"the template tried something the sandbox forbids: {exc}") from None
    except TemplateSyntaxError as exc:
        raise fail(f"template syntax error at line {exc.lineno}: {exc.message}") from None
    except TemplateError as exc:
        raise fail(f"template error: {exc}") from None
    text = " ".join(text.split())
    if not text:
        raise fail("the rendered prompt is empty")
    if len(text) > MAX_PROMPT_CHARS:
        raise fail(f"the rendered prompt has {len(text)} characters, more than the limit of {MAX_PROMPT_CHARS}")
    return RenderedPrompt(
        text=text,
        template_name=name,
        template_source=source,
        template_sha256=sha256_bytes(source.encode()),
        variables=dict(shot.vars),
    )
