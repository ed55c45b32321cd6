"""Storyboards: the YAML format, its validation and the resolved per-shot spec.

A storyboard is a folder `<storyboard_id>/` holding `storyboard.yaml`, its images and optional
`templates/*.j2`. Every shot inherits `defaults` and may override any of them. Loading reports every
problem at once, each naming the file, the shot and the field; nothing but `StoryboardError` comes out of
it, whatever the file holds (hostile YAML included: alias bombs, deep nesting, duplicate keys, bad bytes).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, cast, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shotline.errors import InputError, StoryboardError
from shotline.hashing import sha256_file, stable_hash
from shotline.media.effects import MAX_EFFECTS, EffectCall
from shotline.media.frames import Resolution

STORYBOARD_FILE = "storyboard.yaml"
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
PARTITION_SEPARATOR = "__"
MAX_FILE_BYTES = 1 << 20  # a storyboard.yaml is a few kB; anything near this is a mistake or an attack
MAX_TEMPLATE_BYTES = 64 << 10
MAX_YAML_NODES = 100_000  # after alias expansion: a "billion laughs" file stops here
MAX_YAML_DEPTH = 64
MAX_CAPTION_CHARS = 300

Duration = Annotated[int, Field(ge=1, le=15, strict=True)]
Seconds = Annotated[float, Field(strict=True)]
Format = Literal["landscape", "portrait", "square"]
Fit = Literal["cover", "contain"]
# contain's bars: a plain colour (a name or #rrggbb) or the picture blurred behind itself
Fill = Annotated[str, Field(pattern=r"^(blur|black|white|gray|grey|#[0-9a-fA-F]{6})$")]
CaptionPosition = Literal["top", "middle", "bottom"]
FIRST_TAKE = 1


def _check_slug(value: str) -> str:
    if not SLUG.match(value) or PARTITION_SEPARATOR in value:
        raise ValueError(
            f"{value!r} is not a slug: lowercase letters, digits and single '-', starting with a letter or digit"
        )
    return value


class _Strict(BaseModel):
    # strict numbers: YAML's `duration: yes` or `fade: "1"` is a mistake, not 1
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LogoSettings(_Strict):
    """A logo or watermark over the picture: an image file inside the storyboard folder."""

    image: str = Field(min_length=1, max_length=2048)
    position: Literal["top-left", "top-right", "bottom-left", "bottom-right", "center"] = "top-right"
    scale: Annotated[float, Field(gt=0, le=0.5, strict=True)] = 0.12  # width, fraction of the frame's
    opacity: Annotated[float, Field(gt=0, le=1, strict=True)] = 0.8


class MusicSettings(_Strict):
    """A music bed under the clip's own sound: an audio file inside the storyboard folder."""

    file: str = Field(min_length=1, max_length=2048)
    level_db: Annotated[float, Field(ge=-40, le=6, strict=True)] = -12.0  # LU relative to the clip's audio
    loop: bool = True


class ShotSettings(_Strict):
    """The settings a shot inherits from `defaults` and may override."""

    duration: Duration | None = None
    resolution: Resolution | None = None
    format: Format | None = None
    fit: Fit | None = None
    fade: Annotated[float, Field(ge=0, le=5, strict=True)] | None = None
    loudness_lufs: Annotated[float, Field(ge=-40, le=-5, strict=True)] | None = None
    template: str | None = None
    fill: Fill | None = None
    speed: Annotated[float, Field(ge=0.25, le=4, strict=True)] | None = None
    caption_position: CaptionPosition | None = None
    logo: LogoSettings | None = None
    music: MusicSettings | None = None
    take: int | None = None  # which generation of the shot: raising it asks for a new one
    effects: list[EffectCall] | None = Field(default=None, max_length=MAX_EFFECTS)  # see shotline/media/effects.py

    @field_validator("take", mode="before")
    @classmethod
    def _take_number(cls, value: Any) -> Any:
        return check_take(value)

    @field_validator("template")
    @classmethod
    def _plain_template_name(cls, value: str | None) -> str | None:
        if value is not None and not TEMPLATE_NAME.match(value):
            raise ValueError(
                f"template name {value!r} must be a plain name (letters, digits, '-', '_'): it names the file "
                "templates/<name>.j2 in the storyboard folder"
            )
        return value


BUILTIN_DEFAULTS: dict[str, Any] = {
    "duration": 6,
    "resolution": "720p",
    "format": "landscape",
    "fit": "cover",
    "fade": 0.5,
    "loudness_lufs": -14.0,
    "template": None,
    "take": FIRST_TAKE,
}


RESERVED_SHOT_IDS = {"reel"}  # the published layout keeps <storyboard_id>/reel/ for the reel


class RawShot(ShotSettings):
    id: str
    image: str = Field(min_length=1, max_length=2048)
    prompt: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    caption: str | None = Field(default=None, max_length=MAX_CAPTION_CHARS)
    caption_start: Annotated[float, Field(ge=0, strict=True)] | None = None  # seconds into the finished clip
    caption_end: Annotated[float, Field(gt=0, strict=True)] | None = None
    trim: tuple[Seconds, Seconds] | None = None

    @field_validator("id")
    @classmethod
    def _slug_id(cls, value: str) -> str:
        if value in RESERVED_SHOT_IDS:
            raise ValueError(f"{value!r} is reserved for the storyboard's reel; choose another shot id")
        return _check_slug(value)


class ReelSpec(_Strict):
    transition: Literal["crossfade", "cut"] = "crossfade"
    transition_seconds: Annotated[float, Field(ge=0, le=5, strict=True)] = 0.5
    # cut only deliverables approved in review (`shotline approve`); otherwise fail, listing the others
    require_approval: Annotated[bool, Field(strict=True)] = False

    def render_key(self) -> dict[str, Any]:
        """What decides the reel's bytes: not whether it needs approval."""
        return self.model_dump(exclude={"require_approval"})


class StoryboardHead(_Strict):
    """Everything in storyboard.yaml but the shots, which are validated one by one (see `inspect_storyboard`)."""

    id: str
    title: str | None = Field(default=None, max_length=200)
    defaults: ShotSettings = Field(default_factory=ShotSettings)
    vars: dict[str, Any] = Field(default_factory=dict)
    shots: list[Any] = Field(min_length=1)
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
    fill: str = "black"
    speed: float = 1.0
    caption_position: CaptionPosition = "bottom"
    caption_start: float | None = None
    caption_end: float | None = None
    logo: LogoSettings | None = None
    music: MusicSettings | None = None
    take: Annotated[int, Field(ge=FIRST_TAKE, strict=True)] = FIRST_TAKE
    effects: tuple[EffectCall, ...] = ()

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
        if self.caption_start is not None and self.caption_end is not None and self.caption_end <= self.caption_start:
            raise ValueError(f"caption_end {self.caption_end} s must come after caption_start {self.caption_start} s")
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
        bytes of its local image, template, logo and music. A change here means the shot must be rebuilt."""
        # Take 1 is left out, so shots written before takes existed keep their hash (and are not rerun).
        # So is an empty effects list, for shots written before effects existed.
        unset = {"take"} if shot.take == FIRST_TAKE else set()
        spec = shot.model_dump(mode="json", exclude=unset | (set() if shot.effects else {"effects"}))
        parts: dict[str, Any] = {"shot": spec, "vars": self.vars}
        image = self.folder / shot.image
        if "://" not in shot.image and image.is_file():
            parts["image_sha256"] = sha256_file(image)
        if shot.prompt is None and shot.template:
            tpl = self.template_path(shot.template)
            if tpl.is_file():
                parts["template_sha256"] = sha256_file(tpl)
        for name, rel in (("logo", shot.logo and shot.logo.image), ("music", shot.music and shot.music.file)):
            if rel and (self.folder / rel).is_file():
                parts[f"{name}_sha256"] = sha256_file(self.folder / rel)
        return stable_hash(parts)


class PathRefused(ValueError):
    """A path that does not name a regular file inside its folder; the message says why."""


def resolve_inside(root: str | Path, spec: str, what: str = "image") -> Path:
    """The real path of `spec`, a relative path inside `root`: no `..`, no absolute path, no symlink that
    leads out, a regular file (not a folder, FIFO or device). Raises PathRefused."""
    if any(ord(c) < 32 or ord(c) == 127 for c in spec):
        raise PathRefused(f"the {what} path contains control characters")
    rel = PurePosixPath(spec.replace("\\", "/"))
    if rel.is_absolute() or Path(spec).is_absolute():
        raise PathRefused(f"absolute paths are refused; the {what} must stay inside the storyboard folder ({spec})")
    if ".." in rel.parts:
        raise PathRefused(
            f"'..' is refused in {what} paths; the {what} must stay inside the storyboard folder ({spec})"
        )
    base = Path(root).resolve()
    try:
        real = base.joinpath(*rel.parts).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a name the OS refuses
        raise PathRefused(f"{what} file not found in the storyboard folder: {spec}") from None
    if not real.is_relative_to(base):
        raise PathRefused(f"{what} path leads outside the storyboard folder (through a symlink): {spec}")
    if not real.is_file():
        raise PathRefused(f"not a regular file: {spec}")
    return real


def check_take(value: Any) -> Any:
    """A take number as written: a whole number from 1 (None: not given). Raises ValueError quoting it."""
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"take {value!r} is not a whole number: takes are 1, 2, 3, ...")
    if value < FIRST_TAKE:
        raise ValueError(f"take {value} is not a take: takes count from {FIRST_TAKE} (the first generation)")
    return value


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
    raw, problem = _read_yaml(path, folder.name)
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


# -- reading the YAML -----------------------------------------------------------------------------------------


class _YamlTooBig(yaml.YAMLError):  # type: ignore[misc]  # no PyYAML stubs installed: yaml.YAMLError is Any
    pass


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # no PyYAML stubs installed: yaml.SafeLoader is Any
    """PyYAML's safe loader, refusing duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: the base class raises its own error for it
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        return cast(dict[Any, Any], super().construct_mapping(node, deep=deep))


def _read_yaml(path: Path, storyboard: str) -> tuple[Any, InputError | None]:
    def problem(message: str) -> tuple[None, InputError]:
        return None, InputError(message, storyboard=storyboard)

    try:
        if not path.is_file():
            return problem(f"no {STORYBOARD_FILE} in the storyboard folder")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return problem(f"{STORYBOARD_FILE} is {size:,} bytes; at most {MAX_FILE_BYTES:,} are accepted")
        data = path.read_bytes()
    except OSError as exc:
        return problem(f"cannot read {STORYBOARD_FILE}: {exc.strerror or exc}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return problem(f"{STORYBOARD_FILE} is not UTF-8 text (bad byte at offset {exc.start})")
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader refuses unprintable characters right here
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_size(node)
        return loader.construct_document(node), None
    except yaml.YAMLError as exc:
        return problem(_yaml_message(exc))
    except RecursionError:
        return problem(f"the YAML is nested more than {MAX_YAML_DEPTH} levels deep")
    finally:
        if loader is not None:
            loader.dispose()


def _check_size(root: yaml.Node) -> None:
    """Refuse a document too deep, recursive, or too large once its aliases are expanded."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise _YamlTooBig("an alias refers to the node that contains it (a recursive structure)")
        if depth > MAX_YAML_DEPTH:
            raise _YamlTooBig(f"the YAML is nested more than {MAX_YAML_DEPTH} levels deep")
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        open_nodes.discard(key)
        if total > MAX_YAML_NODES:
            raise _YamlTooBig(f"the YAML expands to more than {MAX_YAML_NODES:,} values (aliases included)")
        sizes[key] = total
        return total

    size(root, 0)


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    if isinstance(exc, yaml.reader.ReaderError):
        return f"YAML syntax error at character {exc.position + 1}: {exc.reason} (#x{exc.character:04x})"
    if isinstance(exc, _YamlTooBig):
        return f"YAML refused: {exc}"
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
    return f"{kind}{at}: {problem}"


# -- resolving a shot ------------------------------------------------------------------------------------------


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
