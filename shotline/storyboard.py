"""Storyboards: the YAML format, its validation and the resolved per-shot spec.

A storyboard is a folder `<storyboard_id>/` holding `storyboard.yaml`, its images and optional
`templates/*.j2`. Every shot inherits `defaults` and may override any of them. Loading reports every
problem at once, each naming the file, the shot and the field.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shotline.errors import InputError, StoryboardError
from shotline.hashing import sha256_file, stable_hash

STORYBOARD_FILE = "storyboard.yaml"
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
PARTITION_SEPARATOR = "__"

Duration = Annotated[int, Field(ge=1, le=15)]
Resolution = Literal["480p", "720p"]
Format = Literal["landscape", "portrait", "square"]
Fit = Literal["cover", "contain"]


def _check_slug(value: str) -> str:
    if not SLUG.match(value) or PARTITION_SEPARATOR in value:
        raise ValueError(
            f"{value!r} is not a slug: lowercase letters, digits and single '-', starting with a letter or digit"
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShotSettings(_Strict):
    """The settings a shot inherits from `defaults` and may override."""

    duration: Duration | None = None
    resolution: Resolution | None = None
    format: Format | None = None
    fit: Fit | None = None
    fade: Annotated[float, Field(ge=0, le=5)] | None = None
    loudness_lufs: Annotated[float, Field(ge=-40, le=-5)] | None = None
    template: str | None = None


BUILTIN_DEFAULTS: dict[str, Any] = {
    "duration": 6,
    "resolution": "720p",
    "format": "landscape",
    "fit": "cover",
    "fade": 0.5,
    "loudness_lufs": -14.0,
    "template": None,
}


RESERVED_SHOT_IDS = {"reel"}  # the published layout keeps <storyboard_id>/reel/ for the reel


class RawShot(ShotSettings):
    id: str
    image: str
    prompt: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    caption: str | None = None
    trim: tuple[float, float] | None = None

    @field_validator("id")
    @classmethod
    def _slug_id(cls, value: str) -> str:
        if value in RESERVED_SHOT_IDS:
            raise ValueError(f"{value!r} is reserved for the storyboard's reel; choose another shot id")
        return _check_slug(value)


class ReelSpec(_Strict):
    transition: Literal["crossfade", "cut"] = "crossfade"
    transition_seconds: Annotated[float, Field(ge=0, le=5)] = 0.5


class StoryboardFile(_Strict):
    id: str
    title: str | None = None
    defaults: ShotSettings = Field(default_factory=ShotSettings)
    vars: dict[str, Any] = Field(default_factory=dict)
    shots: list[RawShot] = Field(min_length=1)
    reel: ReelSpec = Field(default_factory=ReelSpec)

    @field_validator("id")
    @classmethod
    def _slug_id(cls, value: str) -> str:
        return _check_slug(value)


class Shot(_Strict):
    """One shot with every setting resolved: what the pipeline acts on."""

    storyboard_id: str
    id: str
    index: int
    image: str
    prompt: str | None = None
    template: str | None = None
    vars: dict[str, Any]
    duration: Duration
    resolution: Resolution
    format: Format
    fit: Fit
    fade: float
    loudness_lufs: float
    caption: str | None = None
    trim: tuple[float, float] | None = None

    @property
    def partition_key(self) -> str:
        return partition_key(self.storyboard_id, self.id)

    @property
    def kept_duration(self) -> float:
        if self.trim is None:
            return float(self.duration)
        return self.trim[1] - self.trim[0]

    @model_validator(mode="after")
    def _check(self) -> Shot:
        if self.trim is not None:
            start, end = self.trim
            if start < 0 or end <= start:
                raise ValueError(f"trim [{start}, {end}] must be [start, end] with 0 <= start < end")
            if end > self.duration:
                raise ValueError(f"trim end {end} s is past the clip's duration of {self.duration} s")
        if self.fade * 2 > self.kept_duration:
            raise ValueError(f"fade {self.fade} s in and out is longer than the kept clip ({self.kept_duration} s)")
        return self


class Storyboard(_Strict):
    id: str
    title: str
    folder: Path
    file_sha256: str
    vars: dict[str, Any]
    shots: list[Shot]
    reel: ReelSpec

    @property
    def path(self) -> Path:
        return self.folder / STORYBOARD_FILE

    def shot(self, shot_id: str) -> Shot:
        for s in self.shots:
            if s.id == shot_id:
                return s
        raise InputError(f"no shot {shot_id!r} in {self.path}", storyboard=self.id, shot=shot_id)

    def template_path(self, name: str) -> Path:
        return self.folder / "templates" / f"{name}.j2"

    def shot_spec_hash(self, shot: Shot) -> str:
        """Hash of everything that decides a shot's output: its resolved spec, the storyboard vars, and the
        bytes of its local image and template. A change here means the shot must be rebuilt."""
        parts: dict[str, Any] = {"shot": shot.model_dump(mode="json"), "vars": self.vars}
        image = self.folder / shot.image
        if "://" not in shot.image and image.is_file():
            parts["image_sha256"] = sha256_file(image)
        if shot.prompt is None and shot.template:
            tpl = self.template_path(shot.template)
            if tpl.is_file():
                parts["template_sha256"] = sha256_file(tpl)
        return stable_hash(parts)


def partition_key(storyboard_id: str, shot_id: str) -> str:
    return f"{storyboard_id}{PARTITION_SEPARATOR}{shot_id}"


def split_partition_key(key: str) -> tuple[str, str]:
    storyboard_id, sep, shot_id = key.partition(PARTITION_SEPARATOR)
    if not sep or not storyboard_id or not shot_id:
        raise InputError(f"partition key {key!r} is not <storyboard_id>{PARTITION_SEPARATOR}<shot_id>")
    return storyboard_id, shot_id


def discover_storyboards(root: str | Path) -> list[Path]:
    """Every storyboard folder (holding storyboard.yaml) directly under `root`, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.glob(f"*/{STORYBOARD_FILE}"))


def load_storyboard(folder: str | Path) -> Storyboard:
    """Load and validate `<folder>/storyboard.yaml`. Raises StoryboardError listing every problem."""
    folder = Path(folder).resolve()
    path = folder / STORYBOARD_FILE
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StoryboardError(where, [InputError(f"cannot read {path.name}: {exc.strerror}")]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise StoryboardError(
            where, [InputError(f"YAML syntax error{at}: {problem}", storyboard=folder.name)]
        ) from None
    if not isinstance(raw, dict):
        raise StoryboardError(
            where, [InputError("the file must be a mapping with id, shots, ...", storyboard=folder.name)]
        )

    storyboard_id = raw.get("id") if isinstance(raw.get("id"), str) else folder.name
    try:
        parsed = StoryboardFile.model_validate(raw)
    except ValidationError as exc:
        raise StoryboardError(where, _problems_from(exc, raw, storyboard_id, StoryboardFile)) from None

    problems: list[InputError] = []
    if parsed.id != folder.name:
        problems.append(
            InputError(
                f"id {parsed.id!r} differs from its folder name {folder.name!r}", storyboard=parsed.id, field="id"
            )
        )
    shots: list[Shot] = []
    seen: set[str] = set()
    for index, raw_shot in enumerate(parsed.shots):
        if raw_shot.id in seen:
            problems.append(InputError("duplicate shot id", storyboard=parsed.id, shot=raw_shot.id, field="id"))
        seen.add(raw_shot.id)
        shot, shot_problems = _resolve_shot(parsed, raw_shot, index, folder)
        problems.extend(shot_problems)
        if shot is not None:
            shots.append(shot)
    if problems:
        raise StoryboardError(where, problems)
    return Storyboard(
        id=parsed.id,
        title=parsed.title or parsed.id,
        folder=folder,
        file_sha256=sha256_file(path),
        vars=parsed.vars,
        shots=shots,
        reel=parsed.reel,
    )


def _resolve_shot(sb: StoryboardFile, raw: RawShot, index: int, folder: Path) -> tuple[Shot | None, list[InputError]]:
    problems: list[InputError] = []
    merged: dict[str, Any] = dict(BUILTIN_DEFAULTS)
    merged.update(sb.defaults.model_dump(exclude_none=True))
    merged.update(raw.model_dump(exclude_none=True, exclude={"vars"}))
    if raw.prompt is not None:
        if raw.template is not None:
            problems.append(
                InputError(
                    "give either an inline prompt or a template, not both",
                    storyboard=sb.id,
                    shot=raw.id,
                    field="prompt",
                )
            )
        merged["template"] = None
    elif not merged.get("template"):
        problems.append(
            InputError(
                "no prompt: give an inline `prompt` or a `template` (here or in defaults)",
                storyboard=sb.id,
                shot=raw.id,
                field="prompt",
            )
        )
    else:
        tpl = folder / "templates" / f"{merged['template']}.j2"
        if not tpl.is_file():
            problems.append(
                InputError(
                    f"template file templates/{merged['template']}.j2 not found",
                    storyboard=sb.id,
                    shot=raw.id,
                    field="template",
                )
            )
    if "://" not in raw.image:
        image = Path(raw.image)
        if image.is_absolute() or ".." in image.parts:
            problems.append(
                InputError(
                    f"image path {raw.image!r} must be relative and stay inside the storyboard folder",
                    storyboard=sb.id,
                    shot=raw.id,
                    field="image",
                )
            )
        elif not (folder / image).is_file():
            problems.append(
                InputError(
                    f"image file {raw.image!r} not found in the storyboard folder",
                    storyboard=sb.id,
                    shot=raw.id,
                    field="image",
                )
            )
    elif not raw.image.startswith(("https://", "http://", "s3://")):
        problems.append(
            InputError(
                f"image {raw.image!r}: only a relative path, an https:// URL or an s3:// URI",
                storyboard=sb.id,
                shot=raw.id,
                field="image",
            )
        )
    merged.update(storyboard_id=sb.id, index=index, vars={**sb.vars, **raw.vars})
    try:
        shot = Shot.model_validate(merged)
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or _field_from_message(err["msg"])
            problems.append(InputError(_clean(err["msg"]), storyboard=sb.id, shot=raw.id, field=field))
        return None, problems
    return shot, problems


def _field_from_message(msg: str) -> str | None:
    for name in ("trim", "fade"):
        if name in msg:
            return name
    return None


def _problems_from(
    exc: ValidationError, raw: dict[str, Any], storyboard_id: str, model: type[BaseModel]
) -> list[InputError]:
    problems = []
    shots = raw.get("shots") if isinstance(raw.get("shots"), list) else []
    for err in exc.errors():
        loc = list(err["loc"])
        shot_id = None
        if len(loc) >= 2 and loc[0] == "shots" and isinstance(loc[1], int):
            item = shots[loc[1]] if loc[1] < len(shots) else None
            shot_id = item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else f"#{loc[1] + 1}"
            loc = loc[2:]
        field = ".".join(str(p) for p in loc) or None
        msg = _clean(err["msg"])
        if err["type"] == "extra_forbidden" and loc:
            msg = f"unknown field {loc[-1]!r}" + _did_you_mean(str(loc[-1]), _allowed_fields(err, loc, model))
        problems.append(InputError(msg, storyboard=storyboard_id, shot=shot_id, field=field))
    return problems


def _allowed_fields(err: Any, loc: list[Any], model: type[BaseModel]) -> list[str]:
    if err["loc"] and err["loc"][0] == "shots":
        return list(RawShot.model_fields)
    if loc and loc[0] == "defaults":
        return list(ShotSettings.model_fields)
    if loc and loc[0] == "reel":
        return list(ReelSpec.model_fields)
    return list(model.model_fields)


def _did_you_mean(name: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(sorted(allowed))})"


def _clean(msg: str) -> str:
    return msg.removeprefix("Value error, ")
