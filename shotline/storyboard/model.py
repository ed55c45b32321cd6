"""The storyboard as a model: its fields, their limits, defaults and overrides, the resolved shot."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shotline.errors import InputError
from shotline.hashing import sha256_file, stable_hash
from shotline.media.captions import CaptionPosition
from shotline.media.effects import MAX_EFFECTS, EffectCall
from shotline.media.frames import Fill, Fit, Format, Resolution
from shotline.storyboard.keys import PARTITION_SEPARATOR, partition_key

STORYBOARD_FILE = "storyboard.yaml"
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
MAX_TEMPLATE_BYTES = 64 << 10
MAX_CAPTION_CHARS = 300

Duration = Annotated[int, Field(ge=1, le=15, strict=True)]
Seconds = Annotated[float, Field(strict=True)]
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


def check_take(value: Any) -> Any:
    """A take number as written: a whole number from 1 (None: not given). Raises ValueError quoting it."""
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"take {value!r} is not a whole number: takes are 1, 2, 3, ...")
    if value < FIRST_TAKE:
        raise ValueError(f"take {value} is not a take: takes count from {FIRST_TAKE} (the first generation)")
    return value
