"""Loading a storyboard folder: every problem at once, each naming the file, the shot and the field."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from shotline.errors import InputError, StoryboardError
from shotline.hashing import sha256_file
from shotline.storyboard.model import (
    BUILTIN_DEFAULTS,
    MAX_TEMPLATE_BYTES,
    SLUG,
    STORYBOARD_FILE,
    RawShot,
    Shot,
    Storyboard,
    StoryboardHead,
)
from shotline.storyboard.paths import PathRefused, resolve_inside
from shotline.storyboard.yaml_reader import read_yaml


def discover_storyboards(root: str | Path) -> list[Path]:
    """Every storyboard folder (holding storyboard.yaml) directly under `root`, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.glob(f"*/{STORYBOARD_FILE}"))


def load_storyboard(folder: str | Path) -> Storyboard:
    """Load and validate `<folder>/storyboard.yaml`. Raises StoryboardError listing every problem."""
    storyboard, problems = inspect_storyboard(folder)
    if problems or storyboard is None:
        raise StoryboardError(str(Path(folder).resolve() / STORYBOARD_FILE), problems)
    return storyboard


def inspect_storyboard(folder: str | Path) -> tuple[Storyboard | None, list[InputError]]:
    """Every problem of `<folder>/storyboard.yaml`, and the storyboard with the shots that have none.

    The storyboard is None when the file cannot be read or its top level (id, defaults, vars, reel) is
    invalid. `load_storyboard` is this, refusing any problem; `shotline validate` goes on to check the good
    shots' templates and images so that one run lists everything."""
    folder = Path(folder).resolve()
    path = folder / STORYBOARD_FILE
    raw, problem = read_yaml(path, folder.name)
    if problem is not None:
        return None, [problem]
    if not isinstance(raw, dict):
        return None, [InputError("the file must be a mapping with id, shots, ...", storyboard=folder.name)]

    given = raw.get("id")
    storyboard_id = given if isinstance(given, str) and SLUG.match(given) else folder.name
    problems: list[InputError] = []
    head: StoryboardHead | None = None
    try:
        head = StoryboardHead.model_validate(raw)
    except ValidationError as exc:
        problems += _problems_from(exc, storyboard_id, None, StoryboardHead)
    if head is not None and head.id != folder.name:
        problems.append(
            InputError(f"id {head.id!r} differs from its folder name {folder.name!r}", storyboard=head.id, field="id")
        )

    shots: list[Shot] = []
    seen: set[str] = set()
    raw_shots = raw.get("shots")
    items: list[Any] = raw_shots if isinstance(raw_shots, list) else []
    for index, item in enumerate(items):
        shot_id = item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else f"#{index + 1}"
        try:
            raw_shot = RawShot.model_validate(item)
        except ValidationError as exc:
            problems += _problems_from(exc, storyboard_id, shot_id, RawShot)
            continue
        if raw_shot.id in seen:
            problems.append(InputError("duplicate shot id", storyboard=storyboard_id, shot=raw_shot.id, field="id"))
            continue
        seen.add(raw_shot.id)
        if head is None:
            continue  # no defaults or vars to resolve against; the head's problems are reported
        shot, shot_problems = _resolve_shot(head, raw_shot, index, folder)
        problems += shot_problems
        if shot is not None:
            shots.append(shot)
    if head is None:
        return None, problems
    storyboard = Storyboard(
        id=head.id,
        title=head.title or head.id,
        folder=folder,
        file_sha256=sha256_file(path),
        vars=head.vars,
        shots=shots,
        reel=head.reel,
    )
    return storyboard, problems


def _resolve_shot(head: StoryboardHead, raw: RawShot, index: int, folder: Path) -> tuple[Shot | None, list[InputError]]:
    problems: list[InputError] = []

    def problem(message: str, field: str) -> None:
        problems.append(InputError(message, storyboard=head.id, shot=raw.id, field=field))

    merged: dict[str, Any] = dict(BUILTIN_DEFAULTS)
    merged.update(head.defaults.model_dump(exclude_none=True))
    merged.update(raw.model_dump(exclude_none=True, exclude={"vars"}))
    if raw.prompt is not None:
        if raw.template is not None:
            problem("give either an inline prompt or a template, not both", "prompt")
        merged["template"] = None
    elif not merged.get("template"):
        problem("no prompt: give an inline `prompt` or a `template` (here or in defaults)", "prompt")
    else:
        name = merged["template"]
        try:
            template = resolve_inside(folder, f"templates/{name}.j2", what="template")
        except PathRefused as exc:
            missing = "not found" in str(exc)
            problem(f"template file templates/{name}.j2 not found" if missing else str(exc), "template")
        else:
            if template.stat().st_size > MAX_TEMPLATE_BYTES:
                problem(f"template templates/{name}.j2 is larger than {MAX_TEMPLATE_BYTES:,} bytes", "template")
    if "://" not in raw.image:
        try:
            resolve_inside(folder, raw.image, what="image")
        except PathRefused as exc:
            problem(str(exc), "image")
    elif not raw.image.lower().startswith(("https://", "http://", "s3://")):
        problem(f"image {raw.image!r}: only a relative path, an https:// URL or an s3:// URI", "image")
    for name, key in (("logo", "image"), ("music", "file")):
        if isinstance(merged.get(name), dict):
            try:
                resolve_inside(folder, merged[name][key], what=name)
            except PathRefused as exc:
                problem(str(exc), f"{name}.{key}")
    merged.update(storyboard_id=head.id, index=index, vars={**head.vars, **raw.vars})
    try:
        shot = Shot.model_validate(merged)
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or _field_from_message(err["msg"])
            problems.append(InputError(_clean(err["msg"]), storyboard=head.id, shot=raw.id, field=field))
        return None, problems
    return shot, problems


def _field_from_message(msg: str) -> str | None:
    for name in ("trim", "fade", "caption_end"):
        if name in msg:
            return name
    return None


def _problems_from(
    exc: ValidationError, storyboard_id: str, shot_id: str | None, model: type[BaseModel]
) -> list[InputError]:
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        field = ".".join(str(p) for p in loc) or None
        msg = _clean(err["msg"])
        if err["type"] == "extra_forbidden" and loc:
            msg = f"unknown field {str(loc[-1])!r}" + _did_you_mean(str(loc[-1]), _allowed_fields(loc, model))
        elif err["type"] == "missing":
            msg = "required field is missing"
        problems.append(InputError(msg, storyboard=storyboard_id, shot=shot_id, field=field))
    return problems


def _allowed_fields(loc: list[Any], model: type[BaseModel]) -> list[str]:
    """The fields of the model that holds `loc[-1]` (descending into nested models: defaults, reel, logo...)."""
    for part in loc[:-1]:
        info = model.model_fields.get(str(part))
        if info is None:
            break
        nested = [a for a in (info.annotation, *get_args(info.annotation)) if isinstance(a, type)]
        found = next((a for a in nested if issubclass(a, BaseModel)), None)
        if found is None:
            break
        model = found
    return list(model.model_fields)


def _did_you_mean(name: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(sorted(allowed))})"


def _clean(msg: str) -> str:
    return msg.removeprefix("Value error, ")
