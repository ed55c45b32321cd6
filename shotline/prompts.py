"""Prompt rendering: Jinja2's sandbox with StrictUndefined, so a template can neither reach Python
internals nor silently drop a missing variable.

The sandbox stops attribute tricks (`''.__class__.__mro__`); on top of it a render has a budget, so a template
cannot hang a worker or eat its memory either: at most `MAX_RENDER_STEPS` loop iterations and calls, no
number above `MAX_NUMBER_ARG` passed to a call or filter, no `*` or `**` whose result would be huge, no
printf-style `%` or `str.format` on strings (their widths allocate), and the output is cut off as soon as it
passes the prompt limit. Whatever else goes wrong while rendering becomes an InputError naming the shot.
"""

from __future__ import annotations

import contextvars
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel

from shotline.errors import InputError
from shotline.hashing import sha256_bytes
from shotline.storyboard import MAX_TEMPLATE_BYTES, PathRefused, Shot, Storyboard, resolve_inside

# fal's page for the model sets no limit; xAI's video API documents long prompts. We cap well below anything
# that would be silently truncated, so an accidental loop in a template fails here instead of being billed.
MAX_PROMPT_CHARS = 4000
MAX_RENDER_STEPS = 10_000
MAX_NUMBER_ARG = 100_000
_ITER = "_shotline_counted"  # the wrapper every {% for %} iterates through (see _budgeted)
_AT_RUNTIME = "_shotline_value"  # identity, so no filter is folded at compile time, outside the checks

_steps: contextvars.ContextVar[list[int]] = contextvars.ContextVar("prompt_render_steps")


class _PromptSandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if __obj is _at_runtime:
            return args[0]
        _spend(1)
        _check_args(args, kwargs)
        return _sized(SandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("printf-style '%' formatting of strings is not allowed in prompts")
        if operator == "**" and _number(right) and _number(left):
            bits = abs(int(left)).bit_length() if abs(left) > 1 else 1
            if abs(right) > 64 or abs(right) * bits > 8192:
                raise SecurityError(f"{left} ** {right} is too large a number for a prompt")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and _number(count) and len(seq) * count > MAX_PROMPT_CHARS:
                    raise SecurityError(f"repeating a value {count} times makes it longer than {MAX_PROMPT_CHARS}")
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if super().wrap_str_format(value) is not None:
            raise SecurityError("str.format is not allowed in prompts (its field widths allocate)")
        return None


def _guarded_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that counts against the budget and refuses huge numeric arguments and results. Jinja calls
    filters directly from compiled code, not through the environment, so the check has to be on the filter."""
    # @pass_context / @pass_eval_context / @pass_environment set this: those get that object before the value
    skip = 2 if getattr(func, "jinja_pass_arg", None) is not None else 1

    @functools.wraps(func)  # keeps the pass_context / pass_environment marker
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _spend(1)
        _check_args(args[skip:], kwargs)
        return _sized(func(*args, **kwargs))

    return guarded


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

    def fail(msg: str) -> InputError:
        return InputError(msg, storyboard=storyboard.id, shot=shot.id, field="template")

    rel = f"templates/{shot.template}.j2"
    try:
        path = resolve_inside(storyboard.folder, rel, what="template")
        with path.open("rb") as f:
            data = f.read(MAX_TEMPLATE_BYTES + 1)
    except PathRefused as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot read template {rel}: {exc.strerror}") from None
    if len(data) > MAX_TEMPLATE_BYTES:
        raise fail(f"template {rel} is larger than {MAX_TEMPLATE_BYTES:,} bytes")
    try:
        return shot.template, data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"template {rel} is not UTF-8 text (bad byte at offset {exc.start})") from None


def render_prompt(storyboard: Storyboard, shot: Shot) -> RenderedPrompt:
    name, source = template_source(storyboard, shot)
    field = "prompt" if name is None else "template"

    def fail(msg: str) -> InputError:
        return InputError(msg, storyboard=storyboard.id, shot=shot.id, field=field)

    variables = {k: v for k, v in shot.vars.items() if k not in (_ITER, _AT_RUNTIME)}
    token = _steps.set([0])
    try:
        template = _ENV.from_string(_budgeted(_ENV.parse(source)))
        pieces: list[str] = []
        length = 0
        for piece in template.generate(**variables):
            pieces.append(piece)
            length += len(piece)
            if length > MAX_PROMPT_CHARS * 4:  # whitespace is collapsed below; past this it cannot fit
                raise fail(f"the rendered prompt is longer than the limit of {MAX_PROMPT_CHARS} characters")
        text = "".join(pieces)
    except InputError:
        raise
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
    except RecursionError:
        raise fail("the template recurses too deeply") from None
    except Exception as exc:  # whatever a template expression raised (TypeError, ZeroDivisionError...)
        raise fail(f"the template failed: {type(exc).__name__}: {exc}") from None
    finally:
        _steps.reset(token)
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


def check_prompt_current(storyboard: Storyboard, shot: Shot, prompt: str) -> None:
    """Refuse a prompt (from an earlier clip_prompt) that the shot as it is now would not render: the step that
    pays for it must not pay for a stale or foreign prompt."""
    rendered = render_prompt(storyboard, shot)
    if rendered.text != prompt:
        raise InputError(
            "the shot's prompt changed since clip_prompt ran: materialize clip_prompt again before generating",
            storyboard=storyboard.id,
            shot=shot.id,
            field="prompt" if rendered.template_name is None else "template",
        )


def _budgeted(tree: nodes.Template) -> nodes.Template:
    """Make every `{% for %}` iterate through the budgeted wrapper, and every filter run at render time.

    Jinja folds a filter on constants (`{{ 'x' | center(10**9) }}`) while compiling, calling it directly,
    past `call_filter`; a value that is not a constant stops that."""
    for loop in list(tree.find_all(nodes.For)):
        loop.iter = nodes.Call(nodes.Name(_ITER, "load"), [loop.iter], [], None, None).set_lineno(loop.lineno)
    for flt in list(tree.find_all(nodes.Filter)):
        if flt.node is not None:
            call = nodes.Call(nodes.Name(_AT_RUNTIME, "load"), [flt.node], [], None, None)
            call.set_lineno(flt.lineno)
            flt.node = call
    return tree


def _at_runtime(value: Any) -> Any:
    return value


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _spend(1)
        yield item


def _spend(steps: int) -> None:
    counter = _steps.get(None)
    if counter is None:
        return
    counter[0] += steps
    if counter[0] > MAX_RENDER_STEPS:
        raise SecurityError(f"the template runs more than {MAX_RENDER_STEPS:,} loop iterations and calls")


def _check_args(args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if _number(value) and abs(value) > MAX_NUMBER_ARG:
            raise SecurityError(f"the number {value} is too large for a prompt template (at most {MAX_NUMBER_ARG:,})")


def _sized(result: Any) -> Any:
    if isinstance(result, (str, list, tuple)) and len(result) > MAX_PROMPT_CHARS * 4:
        raise SecurityError(f"a value of {len(result):,} items or characters is too large for a prompt")
    return result


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_ENV = _PromptSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
_ENV.globals.pop("lipsum", None)  # lipsum(n) writes n paragraphs: no use in a prompt
_ENV.filters = {name: _guarded_filter(func) for name, func in _ENV.filters.items()}
_ENV.globals[_ITER] = lambda iterable: _counted(iterable)
_ENV.globals[_AT_RUNTIME] = _at_runtime
