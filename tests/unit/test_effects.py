"""The effects registry and how a storyboard's `effects:` is validated: names, parameters, messages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import Field, ValidationError

from shotline.cli import main
from shotline.finishing import _spec_key, final_duration
from shotline.media import effects
from shotline.media.effects import EffectCall, EffectParams, definition_for, register, shotline_effect, unregister
from shotline.media.finish_spec import FinishSpec
from shotline.storyboard import load_storyboard
from testkit.storyboard_factory import write_storyboard

MOVIEPY_NAMES = {
    "black_white", "gamma_correction", "lum_contrast", "mirror_x", "mirror_y", "painting", "invert_colors",
    "multiply_color", "rotate", "time_mirror", "time_symmetrize", "freeze", "scroll", "audio_normalize",
    "multiply_volume", "audio_delay",
}  # fmt: skip


def _storyboard(tmp_path: Path, shots: list[dict[str, Any]], defaults: dict[str, Any] | None = None) -> Path:
    body: dict[str, Any] = {"id": "fx", "shots": shots}
    if defaults is not None:
        body["defaults"] = defaults
    return write_storyboard(tmp_path, body, images={"images/a.png": (640, 360)})


def _shot(shot_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": shot_id, "image": "images/a.png", "prompt": "boats", **extra}


def test_moviepy_effects_are_registered_under_stable_names() -> None:
    assert set(effects.registry()) >= MOVIEPY_NAMES
    call = EffectCall.model_validate({"name": "gamma_correction", "gamma": 0.8})
    assert call.params == {"gamma": 0.8}
    assert call.model_dump() == {"name": "gamma_correction", "gamma": 0.8}  # the storyboard's own shape
    # defaults are filled in, so the cache key names every parameter
    assert EffectCall.model_validate({"name": "lum_contrast", "lum": 10}).params == {
        "lum": 10.0, "contrast": 0.0, "contrast_threshold": 127.0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "needles"),
    [
        ({"name": "blak_white"}, ["unknown effect 'blak_white'", "did you mean 'black_white'?"]),
        ({"name": "moviepy.video.fx.Painting"}, ["unknown effect 'moviepy.video.fx.Painting'", "registered effects:"]),
        ({"name": "os:system", "command": "true"}, ["unknown effect 'os:system'"]),
        ({"gamma": 1}, ["an effect needs a `name`"]),
        ("mirror_x", ["an effect is a mapping"]),
        ({"name": "gamma_correction", "gamma": -1}, ["effect 'gamma_correction', parameter 'gamma'", "greater than 0"]),
        ({"name": "gamma_correction", "gamma": "0.8"}, ["parameter 'gamma'", "valid number", "'0.8'"]),
        ({"name": "gamma_correction"}, ["parameter 'gamma': required parameter is missing"]),
        ({"name": "rotate", "angle": 10, "angel": 3}, ["parameter 'angel': unknown parameter (did you mean 'angle'?)"]),
        ({"name": "freeze", "freeze_duration": 99}, ["effect 'freeze', parameter 'freeze_duration'", "less than or"]),
        ({"name": "multiply_volume", "factor": 1, "start_time": 2, "end_time": 1}, ["end_time 1.0 s must come after"]),
        ({"name": "black_white", "weights": [1, 1]}, ["three numbers"]),
    ],
)
def test_bad_effects_are_refused_with_the_effect_and_parameter_named(raw: Any, needles: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        EffectCall.model_validate(raw)
    message = caught.value.errors()[0]["msg"]
    for needle in needles:
        assert needle in message, message


def test_shots_inherit_effects_from_defaults_and_may_override_them(tmp_path: Path) -> None:
    folder = _storyboard(
        tmp_path,
        [_shot("s01"), _shot("s02", effects=[{"name": "mirror_x"}]), _shot("s03", effects=[])],
        defaults={"effects": [{"name": "black_white"}]},
    )
    storyboard = load_storyboard(folder)
    names = {s.id: [c.name for c in s.effects] for s in storyboard.shots}
    assert names == {"s01": ["black_white"], "s02": ["mirror_x"], "s03": []}


def test_a_shot_without_effects_keeps_its_spec_hash_and_effects_change_it(tmp_path: Path) -> None:
    plain = load_storyboard(_storyboard(tmp_path / "a", [_shot("s01")]))
    none = load_storyboard(_storyboard(tmp_path / "b", [_shot("s01", effects=[])]))
    gamma = load_storyboard(
        _storyboard(tmp_path / "c", [_shot("s01", effects=[{"name": "gamma_correction", "gamma": 2}])])
    )
    other = load_storyboard(
        _storyboard(tmp_path / "d", [_shot("s01", effects=[{"name": "gamma_correction", "gamma": 3}])])
    )
    h = [sb.shot_spec_hash(sb.shots[0]) for sb in (plain, none, gamma, other)]
    assert h[0] == h[1] and len({h[1], h[2], h[3]}) == 3
    assert "effects" not in plain.shots[0].model_dump(mode="json", exclude={"effects"})


def test_the_final_clip_cache_key_follows_effects_and_effects_block_stream_copy() -> None:
    plain = FinishSpec()
    assert "effects" not in _spec_key(plain)  # deliverables finished before effects existed keep their key
    a = FinishSpec(effects=[{"name": "multiply_color", "factor": 1.2}])
    b = FinishSpec(effects=[{"name": "multiply_color", "factor": 1.3}])
    c = FinishSpec(effects=[{"name": "multiply_color", "factor": 1.2}, {"name": "mirror_x"}])
    assert len({str(_spec_key(s)) for s in (plain, a, b, c)}) == 4
    assert "effects" in a.picture_changes() and "effects" not in plain.picture_changes()
    sound_only = FinishSpec(effects=[{"name": "multiply_volume", "factor": 0.5}])
    assert "effects" in sound_only.picture_changes()  # never a stream copy


def test_time_effects_lengthen_the_expected_deliverable(tmp_path: Path) -> None:
    shots = [
        _shot("s01", duration=4, effects=[{"name": "freeze", "t": 1.0, "freeze_duration": 1.5}]),
        _shot("s02", duration=4, trim=[0.0, 2.0], effects=[{"name": "time_symmetrize"}]),
        _shot("s03", duration=4, speed=2.0, effects=[{"name": "time_mirror"}]),
    ]
    storyboard = load_storyboard(_storyboard(tmp_path, shots))
    assert [final_duration(s) for s in storyboard.shots] == [5.5, 4.0, 2.0]


def test_validate_lists_every_effect_problem_naming_storyboard_shot_effect_and_parameter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shots = [
        _shot("s01", effects=[{"name": "black_white"}, {"name": "gamma_correction", "gamma": 0.8}]),  # fine
        _shot("s02", effects=[{"name": "invert_colours"}]),
        _shot("s03", effects=[{"name": "mirror_x"}, {"name": "rotate", "angle": 720}]),
        _shot("s04", duration=3, effects=[{"name": "freeze", "t": 5, "freeze_duration": 1}]),
        _shot("s05", effects=[{"name": "__import__('os').system"}]),
    ]
    folder = _storyboard(tmp_path, shots, defaults={"effects": [{"name": "painting", "saturation": 9}]})
    assert main(["validate", str(folder)]) == 1
    lines = capsys.readouterr().err.splitlines()
    expected = [
        (None, "defaults.effects.0", "effect 'painting', parameter 'saturation': Input should be less than or equal"),
        ("s02", "effects.0", "unknown effect 'invert_colours'; only registered effects run (did you mean"),
        ("s03", "effects.1", "effect 'rotate', parameter 'angle': Input should be less than or equal to 360"),
        ("s05", "effects.0", "unknown effect \"__import__('os').system\""),
    ]
    for shot, field, needle in expected:
        where = f"storyboard 'fx', shot '{shot}', field '{field}'" if shot else f"storyboard 'fx', field '{field}'"
        assert any(where in line and needle in line for line in lines), (where, needle, lines)
    # s04's freeze time is checked against the shot once its fields are valid: fix the defaults and look again
    folder = _storyboard(tmp_path / "again", shots[:1] + shots[3:4])
    assert main(["validate", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "shot 's04', field 'effects.0.t': effect 'freeze', parameter 't': 5.0 s is past the end of the shot" in err
    assert "'s01'" not in err


class _Vignette(EffectParams):
    strength: Annotated[float, Field(ge=0, le=1)] = 0.5


@pytest.fixture
def vignette() -> Iterator[str]:
    @shotline_effect(params=_Vignette, touches=("picture",))
    def darken(clip: Any, params: _Vignette) -> Any:
        """Darken the picture."""
        return clip.image_transform(lambda im: (im * (1 - params.strength)).astype("uint8"))

    register(definition_for("team_darken", darken, "tests"))
    yield "team_darken"
    unregister("team_darken")


def test_team_effects_are_registered_with_their_own_typed_parameters(vignette: str) -> None:
    assert EffectCall.model_validate({"name": vignette}).params == {"strength": 0.5}
    with pytest.raises(ValidationError, match="effect 'team_darken', parameter 'strength'"):
        EffectCall.model_validate({"name": vignette, "strength": 2})
    definition = effects.find(vignette)
    assert definition.origin == "tests" and definition.description == "Darken the picture."
    with pytest.raises(ValueError, match="already registered"):
        register(effects.EffectDef(vignette, _Vignette, lambda p: lambda c: c, frozenset({"picture"}), origin="else"))
    with pytest.raises(TypeError, match="not marked"):
        definition_for("plain", lambda clip, p: clip, "tests")
    with pytest.raises(ValueError, match="snake_case"):
        register(effects.EffectDef("Bad-Name", _Vignette, lambda p: lambda c: c, frozenset({"picture"})))


def test_entry_points_of_the_group_are_loaded_and_a_broken_one_is_reported_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from importlib.metadata import EntryPoint

    points = [
        EntryPoint("team_mirror", "tests.unit.test_effects:_marked_mirror", effects.ENTRY_POINT_GROUP),
        EntryPoint("team_broken", "tests.unit.test_effects:_no_such_thing", effects.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(
        effects.metadata, "entry_points", lambda group: points if group == effects.ENTRY_POINT_GROUP else []
    )
    monkeypatch.setattr(effects, "_entry_points_loaded", False)
    monkeypatch.setattr(effects, "_entry_point_problems", {})
    try:
        assert EffectCall.model_validate({"name": "team_mirror"}).definition.origin.startswith(
            "entry point team_mirror"
        )
        with pytest.raises(
            ValidationError, match=r"effect 'team_broken': entry point team_broken = .* cannot be loaded"
        ):
            EffectCall.model_validate({"name": "team_broken"})
        assert EffectCall.model_validate({"name": "mirror_x"}).name == "mirror_x"  # the others still work
    finally:
        unregister("team_mirror")


def _mirror_apply(clip: Any, params: EffectParams) -> Any:
    return clip.image_transform(lambda im: im[:, ::-1])


_marked_mirror = shotline_effect(touches=("picture",), description="mirror, from a plugin")(_mirror_apply)
