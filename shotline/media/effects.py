"""Effects a storyboard may ask for: a registry of named moviepy effects and their typed parameters.

A storyboard names effects (`effects: [{name: gamma_correction, gamma: 0.8}]`); only names in the registry run,
never an import path. The registry holds moviepy 2's own video and audio effects under stable snake_case names,
plus what the team registers: in-process with `register`, or from an installed package through the entry-point
group `shotline.effects`, whose entries load a moviepy `Effect` class or a function on a clip marked with
`shotline_effect(params=...)`. Parameters are validated by each effect's pydantic model before anything runs.

moviepy is imported only when an effect is built (`EffectDef.build`), so loading a storyboard stays cheap.
"""

from __future__ import annotations

import difflib
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shotline.media.encoding import FPS

ENTRY_POINT_GROUP = "shotline.effects"
EFFECT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_EFFECTS = 16  # per shot: each one is a pass of Python over every frame

# What an effect changes. "time" effects reorder or hold frames: picture and sound move together.
Touches = Literal["picture", "sound", "time"]


class EffectParams(BaseModel):
    """Base of every effect's parameter model: strict numbers (YAML's `gamma: "1"` is a mistake), no extras."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


class NoParams(EffectParams):
    pass


Clip = Any  # a moviepy VideoClip (picture and time effects) or AudioClip (sound effects)
Builder = Callable[[EffectParams], Callable[[Clip], Clip]]


@dataclass(frozen=True)
class EffectDef:
    """One registered effect. `build(params)` gives the function that applies it to a moviepy clip.

    `action` is the C2PA action it is recorded as. `native(params)`, when given, is an ffmpeg filter doing the
    same to the picture (`vf`) or the sound (`af`), used instead of moviepy's per-frame Python loop; its output
    is held to moviepy's by tests/integration/test_effects_render.py."""

    name: str
    params: type[EffectParams]
    build: Builder
    touches: frozenset[Touches]
    description: str = ""
    action: str = "c2pa.filtered"
    native: Callable[[EffectParams], NativeFilter] | None = None
    origin: str = "shotline"
    frames: Callable[[EffectParams, int], int] | None = None  # frames out for frames in, if it changes them
    # a problem with these parameters on a shot of this many seconds (after its trim), as (parameter, message)
    check: Callable[[EffectParams, float], tuple[str, str] | None] | None = None

    def validate(self, raw: dict[str, Any]) -> EffectParams:
        return self.params.model_validate(raw)


@dataclass(frozen=True)
class NativeFilter:
    vf: str = ""  # on rgb24 frames before the deliverable's conform
    af: str = ""  # on the decoded sound before loudness


# -- the storyboard's value ------------------------------------------------------------------------------------


class EffectCall(BaseModel):
    """One entry of a shot's `effects:` as written, `{name: ..., <parameters>}`, validated against the registry.

    `params` holds every parameter with defaults filled in (JSON values), so the cache key of a finished clip
    changes when an effect or any of its parameters does. Dumps back to the flat form the storyboard uses."""

    model_config = ConfigDict(frozen=True)

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, value: Any) -> Any:
        if isinstance(value, EffectCall):
            return value
        if not isinstance(value, dict):
            kind = type(value).__name__
            raise _error(
                "effect_shape", f"an effect is a mapping {{name: <effect>, <parameter>: <value>}}, not a {kind}"
            )
        raw = dict(value)
        name = raw.pop("name", None)
        if not isinstance(name, str):
            raise _error("effect_name", f"an effect needs a `name`: one of {_names()}")
        definition = find(name)
        try:
            params = definition.validate(raw)
        except ValidationError as exc:
            raise _error("effect_params", _params_message(name, exc)) from None
        return {"name": name, "params": params.model_dump(mode="json")}

    @model_serializer
    def _dump(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}

    @property
    def definition(self) -> EffectDef:
        return find(self.name)

    def typed_params(self) -> EffectParams:
        return self.definition.validate(self.params)

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({args})"


def _params_message(name: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        param = ".".join(str(p) for p in err["loc"]) or "?"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = sorted(find(name).params.model_fields)
            close = difflib.get_close_matches(str(err["loc"][-1]), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed) or 'none'}"
            msg = f"unknown parameter ({hint})"
        elif err["type"] == "missing":
            msg = "required parameter is missing"
        elif "input" in err and not isinstance(err["input"], dict | list):
            msg += f" (got {err['input']!r})"
        parts.append(f"effect {name!r}, parameter {param!r}: {msg}")
    return "; ".join(parts)


def _error(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


# -- the registry ----------------------------------------------------------------------------------------------


class UnknownEffect(ValueError):
    pass


_registry: dict[str, EffectDef] = {}
_entry_points_loaded = False
_entry_point_problems: dict[str, str] = {}
_lock = threading.Lock()


def register(definition: EffectDef, *, replace: bool = False) -> EffectDef:
    """Add an effect to the registry. A name already taken is refused unless `replace`."""
    if not EFFECT_NAME.match(definition.name):
        raise ValueError(f"effect name {definition.name!r} must be snake_case: [a-z][a-z0-9_]*")
    if not (isinstance(definition.params, type) and issubclass(definition.params, BaseModel)):
        raise TypeError(f"effect {definition.name!r}: params must be a pydantic model class")
    with _lock:
        taken = _registry.get(definition.name)
        if taken is not None and not replace and taken != definition:
            raise ValueError(f"effect {definition.name!r} is already registered (by {taken.origin})")
        _registry[definition.name] = definition
    return definition


def unregister(name: str) -> None:
    with _lock:
        _registry.pop(name, None)


def shotline_effect(
    *,
    params: type[EffectParams] = NoParams,
    touches: Iterable[Touches] = ("picture",),
    description: str = "",
    action: str = "c2pa.filtered",
) -> Callable[[Any], Any]:
    """Mark a moviepy `Effect` class or a function `(clip, params) -> clip` as an effect an entry point of the
    group `shotline.effects` may name. The entry point's name is the effect's name in storyboards."""

    def mark(target: Any) -> Any:
        target.__shotline_effect__ = {
            "params": params,
            "touches": frozenset(touches),
            "description": description or (target.__doc__ or "").strip().split("\n")[0],
            "action": action,
        }
        return target

    return mark


def definition_for(name: str, target: Any, origin: str) -> EffectDef:
    """The registry entry for a marked moviepy Effect class or clip function."""
    mark = getattr(target, "__shotline_effect__", None)
    if not isinstance(mark, dict):
        raise TypeError(f"{origin}: {target!r} is not marked with shotline_effect(params=...)")
    return EffectDef(name=name, build=_builder_for(target), origin=origin, **mark)


def _builder_for(target: Any) -> Builder:
    if isinstance(target, type):  # a moviepy Effect class: its fields are the parameters

        def build_effect(params: EffectParams) -> Callable[[Clip], Clip]:
            effect = target(**params.model_dump())
            return lambda clip: clip.with_effects([effect])

        return build_effect

    def build_function(params: EffectParams) -> Callable[[Clip], Clip]:
        return lambda clip: target(clip, params)

    return build_function


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {ep.name} = {ep.value}"
        try:
            register(definition_for(ep.name, ep.load(), origin))
        except Exception as exc:  # a broken plugin must not break storyboards that do not use it
            _entry_point_problems[ep.name] = f"{origin} cannot be loaded: {exc}"


def registry() -> dict[str, EffectDef]:
    _load_entry_points()
    return dict(_registry)


def _names() -> str:
    return ", ".join(sorted(registry()))


def find(name: str) -> EffectDef:
    """The registered effect `name`. Raises a pydantic error naming the registered ones otherwise."""
    effects = registry()
    if name in effects:
        return effects[name]
    if name in _entry_point_problems:
        raise _error("effect_broken", f"effect {name!r}: {_entry_point_problems[name]}")
    close = difflib.get_close_matches(name, list(effects), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"registered effects: {_names()}"
    raise _error("effect_unknown", f"unknown effect {name!r}; only registered effects run ({hint})")


def effected_frames(calls: Sequence[EffectCall], frames: int) -> int:
    """How many frames (at the deliverable's rate) `frames` source frames become after the effects."""
    for call in calls:
        definition = call.definition
        if definition.frames is not None:
            frames = definition.frames(call.typed_params(), frames)
    return frames


def shot_problems(calls: Sequence[EffectCall], kept_s: float) -> list[tuple[str, str]]:
    """(field, message) for each effect whose parameters cannot work on a shot lasting `kept_s` seconds."""
    problems = []
    for index, call in enumerate(calls):
        check = call.definition.check
        found = check(call.typed_params(), kept_s) if check is not None else None
        if found is not None:
            param, message = found
            problems.append((f"effects.{index}.{param}", f"effect {call.name!r}, parameter {param!r}: {message}"))
    return problems


def touches(calls: Sequence[EffectCall], what: Touches) -> bool:
    return any(what in c.definition.touches for c in calls)


# -- moviepy's own effects -------------------------------------------------------------------------------------

_Seconds = Annotated[float, Field(ge=0, le=600)]
_Byte = Annotated[float, Field(ge=0, le=255)]


class BlackWhiteParams(EffectParams):
    # channel weights, or moviepy's "CRT_phosphor" set (0.2125, 0.7154, 0.0721)
    weights: list[Annotated[float, Field(ge=0, le=1)]] | Literal["crt_phosphor"] = [1.0, 1.0, 1.0]
    preserve_luminosity: bool = True

    @model_validator(mode="after")
    def _three(self) -> BlackWhiteParams:
        if isinstance(self.weights, list) and (len(self.weights) != 3 or sum(self.weights) == 0):
            raise ValueError("weights are three numbers (red, green, blue), not all 0")
        return self


class GammaParams(EffectParams):
    gamma: Annotated[float, Field(gt=0, le=10)]


class LumContrastParams(EffectParams):
    lum: Annotated[float, Field(ge=-255, le=255)] = 0.0
    contrast: Annotated[float, Field(ge=-1, le=10)] = 0.0
    contrast_threshold: _Byte = 127.0


class PaintingParams(EffectParams):
    saturation: Annotated[float, Field(ge=0, le=5)] = 1.4
    black: Annotated[float, Field(ge=0, le=1)] = 0.006


class FactorParams(EffectParams):
    factor: Annotated[float, Field(ge=0, le=10)]


class RotateParams(EffectParams):
    angle: Annotated[float, Field(ge=-360, le=360)]  # degrees, anticlockwise
    resample: Literal["nearest", "bilinear", "bicubic"] = "bicubic"
    expand: bool = False  # False: keep the frame size (corners cropped); True: grow the frame to hold it all


class FreezeParams(EffectParams):
    t: Annotated[float, Field(ge=0, le=600)] | Literal["end"] = 0.0  # seconds into the shot, or its last frame
    freeze_duration: Annotated[float, Field(gt=0, le=15)]


class ScrollParams(EffectParams):
    # a w x h window (pixels; default: the whole frame) moving at x_speed, y_speed pixels per second
    w: Annotated[int, Field(ge=16, le=4096)] | None = None
    h: Annotated[int, Field(ge=16, le=4096)] | None = None
    x_speed: Annotated[float, Field(ge=-2000, le=2000)] = 0.0
    y_speed: Annotated[float, Field(ge=-2000, le=2000)] = 0.0
    x_start: Annotated[int, Field(ge=0, le=4096)] = 0
    y_start: Annotated[int, Field(ge=0, le=4096)] = 0


class MultiplyVolumeParams(EffectParams):
    factor: Annotated[float, Field(ge=0, le=10)]
    start_time: _Seconds | None = None
    end_time: _Seconds | None = None

    @model_validator(mode="after")
    def _ordered(self) -> MultiplyVolumeParams:
        if self.start_time is not None and self.end_time is not None and self.end_time <= self.start_time:
            raise ValueError(f"end_time {self.end_time} s must come after start_time {self.start_time} s")
        return self


class AudioDelayParams(EffectParams):
    offset: Annotated[float, Field(gt=0, le=5)] = 0.2
    n_repeats: Annotated[int, Field(ge=1, le=32)] = 8
    decay: Annotated[float, Field(ge=0, le=2)] = 1.0


def _freeze_frames(params: EffectParams, frames: int) -> int:
    assert isinstance(params, FreezeParams)
    return frames + round(params.freeze_duration * FPS)


def _freeze_check(params: EffectParams, kept_s: float) -> tuple[str, str] | None:
    assert isinstance(params, FreezeParams)
    if params.t != "end" and params.t >= kept_s:
        return "t", f"{params.t} s is past the end of the shot ({kept_s:g} s after its trim)"
    return None


def _window_check(params: EffectParams, kept_s: float) -> tuple[str, str] | None:
    assert isinstance(params, MultiplyVolumeParams)
    if params.start_time is not None and params.start_time >= kept_s:
        return "start_time", f"{params.start_time} s is past the end of the shot ({kept_s:g} s after its trim)"
    return None


def _fx(module: str, cls: str, **fixed: Any) -> Builder:
    """A builder for moviepy's effect class `cls` (in moviepy.vfx or moviepy.afx), the parameters as its fields."""

    def build(params: EffectParams) -> Callable[[Clip], Clip]:
        import moviepy

        effect = getattr(getattr(moviepy, module), cls)(**params.model_dump(), **fixed)
        return lambda clip: clip.with_effects([effect])

    return build


def _picture_and_sound(cls: str) -> Builder:
    """vfx.TimeMirror / TimeSymmetrize applied to the picture and to the sound each on its own: on a video clip,
    moviepy 2.2.1 mirrors the sound about `duration - t - 1/video fps`, one frame off the picture, and then asks
    the sound for negative times; on the sound alone it mirrors at the sample."""

    def build(params: EffectParams) -> Callable[[Clip], Clip]:
        from moviepy import vfx

        def apply(clip: Clip) -> Clip:
            effect = getattr(vfx, cls)()
            if getattr(clip, "audio", None) is None:
                return clip.with_effects([effect])
            picture = clip.without_audio().with_effects([effect])
            return picture.with_audio(clip.audio.with_effects([getattr(vfx, cls)()]))

        return apply

    return build


def _black_white(params: EffectParams) -> Callable[[Clip], Clip]:
    from moviepy import vfx

    assert isinstance(params, BlackWhiteParams)
    weights = "CRT_phosphor" if params.weights == "crt_phosphor" else list(params.weights)
    effect = vfx.BlackAndWhite(RGB=weights, preserve_luminosity=params.preserve_luminosity)
    return lambda clip: clip.with_effects([effect])


def _scroll(params: EffectParams) -> Callable[[Clip], Clip]:
    assert isinstance(params, ScrollParams)

    # vfx.Scroll clamps the window's corner to [0, w - 1] rather than [0, frame - w], so its window runs off the
    # frame and the frames shrink; this is the same moving window, kept inside the frame.
    def apply(clip: Clip) -> Clip:
        w, h = params.w or clip.w, params.h or clip.h
        if w > clip.w or h > clip.h:
            raise ValueError(f"scroll window {w}x{h} is larger than the frame {clip.w}x{clip.h}")
        x_max, y_max = clip.w - w, clip.h - h

        def window(get_frame: Callable[[float], Any], t: float) -> Any:
            x = int(max(0, min(x_max, params.x_start + round(params.x_speed * t))))
            y = int(max(0, min(y_max, params.y_start + round(params.y_speed * t))))
            return get_frame(t)[y : y + h, x : x + w]

        return clip.transform(window, apply_to="mask")

    return apply


def _native_black_white(params: EffectParams) -> NativeFilter:
    assert isinstance(params, BlackWhiteParams)
    r, g, b = (0.2125, 0.7154, 0.0721) if params.weights == "crt_phosphor" else params.weights
    total = (r + g + b) if params.preserve_luminosity else 1.0
    r, g, b = r / total, g / total, b / total
    # moviepy truncates the weighted sum to uint8; colorchannelmixer rounds: within one level
    mix = ":".join(f"{c}{k}={v:.6f}" for c in "rgb" for k, v in zip("rgb", (r, g, b), strict=True))
    return NativeFilter(vf=f"colorchannelmixer={mix}")


def _native_gamma(params: EffectParams) -> NativeFilter:
    assert isinstance(params, GammaParams)
    expr = f"trunc(255*pow(val/255\\,{params.gamma:.6g}))"
    return NativeFilter(vf=f"lutrgb=r='{expr}':g='{expr}':b='{expr}'")


def _native_invert(params: EffectParams) -> NativeFilter:
    return NativeFilter(vf="negate")


def _native_mirror_x(params: EffectParams) -> NativeFilter:
    return NativeFilter(vf="hflip")


def _native_mirror_y(params: EffectParams) -> NativeFilter:
    return NativeFilter(vf="vflip")


def _native_multiply_color(params: EffectParams) -> NativeFilter:
    assert isinstance(params, FactorParams)
    expr = f"min(255\\,trunc({params.factor:.6g}*val))"
    return NativeFilter(vf=f"lutrgb=r='{expr}':g='{expr}':b='{expr}'")


def _native_multiply_volume(params: EffectParams) -> NativeFilter:
    assert isinstance(params, MultiplyVolumeParams)
    if params.start_time is not None or params.end_time is not None:
        start = params.start_time or 0.0
        end = "1e9" if params.end_time is None else f"{params.end_time:.6g}"
        return NativeFilter(af=f"volume={params.factor:.6g}:eval=frame:enable='between(t,{start:.6g},{end})'")
    return NativeFilter(af=f"volume={params.factor:.6g}")


_PICTURE: frozenset[Touches] = frozenset({"picture"})
_SOUND: frozenset[Touches] = frozenset({"sound"})
_TIME: frozenset[Touches] = frozenset({"time", "picture", "sound"})

BUILTINS = (
    EffectDef("black_white", BlackWhiteParams, _black_white, _PICTURE, "vfx.BlackAndWhite: desaturate",
              native=_native_black_white),
    EffectDef("gamma_correction", GammaParams, _fx("vfx", "GammaCorrection"), _PICTURE, "vfx.GammaCorrection",
              native=_native_gamma),
    EffectDef("lum_contrast", LumContrastParams, _fx("vfx", "LumContrast"), _PICTURE, "vfx.LumContrast"),
    EffectDef("mirror_x", NoParams, _fx("vfx", "MirrorX"), _PICTURE, "vfx.MirrorX: flip left-right",
              native=_native_mirror_x),
    EffectDef("mirror_y", NoParams, _fx("vfx", "MirrorY"), _PICTURE, "vfx.MirrorY: flip upside down",
              native=_native_mirror_y),
    EffectDef("painting", PaintingParams, _fx("vfx", "Painting"), _PICTURE, "vfx.Painting"),
    EffectDef("invert_colors", NoParams, _fx("vfx", "InvertColors"), _PICTURE, "vfx.InvertColors",
              native=_native_invert),
    EffectDef("multiply_color", FactorParams, _fx("vfx", "MultiplyColor"), _PICTURE, "vfx.MultiplyColor",
              native=_native_multiply_color),
    EffectDef("rotate", RotateParams, _fx("vfx", "Rotate"), _PICTURE, "vfx.Rotate", action="c2pa.orientation"),
    EffectDef("time_mirror", NoParams, _picture_and_sound("TimeMirror"), _TIME, "vfx.TimeMirror: play backwards",
              action="c2pa.edited"),
    EffectDef("time_symmetrize", NoParams, _picture_and_sound("TimeSymmetrize"), _TIME,
              "vfx.TimeSymmetrize: forwards then backwards", action="c2pa.edited", frames=lambda p, n: 2 * n),
    EffectDef("freeze", FreezeParams, _fx("vfx", "Freeze"), _TIME, "vfx.Freeze: hold a frame", action="c2pa.edited",
              frames=_freeze_frames, check=_freeze_check),
    EffectDef("scroll", ScrollParams, _scroll, _PICTURE, "vfx.Scroll: a moving window", action="c2pa.cropped"),
    EffectDef("audio_normalize", NoParams, _fx("afx", "AudioNormalize"), _SOUND, "afx.AudioNormalize: peak to 0 dB"),
    EffectDef("multiply_volume", MultiplyVolumeParams, _fx("afx", "MultiplyVolume"), _SOUND, "afx.MultiplyVolume",
              native=_native_multiply_volume, check=_window_check),
    EffectDef("audio_delay", AudioDelayParams, _fx("afx", "AudioDelay"), _SOUND, "afx.AudioDelay: echoes"),
)  # fmt: skip

for _definition in BUILTINS:
    register(_definition)
