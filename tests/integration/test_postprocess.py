"""Finishing clips into deliverables, checked by decoding and measuring the output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from shotline.errors import MediaError
from shotline.media.captions import render_caption
from shotline.media.postprocess import FinishSpec, make_thumbnail, render_final
from shotline.media.probe import decode_check, faststart_ok, measure_loudness, probe
from testkit.mediakit import gray_frames, make_clip

FAST = "veryfast"  # High profile like the default, a fraction of the time


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sources")
    return {
        "landscape": make_clip(d / "landscape.mp4", size=(640, 360), duration=2.0),
        "square": make_clip(d / "square.mp4", size=(400, 400), duration=1.0),
        "silent": make_clip(d / "silent.mp4", size=(640, 360), duration=1.0, audio=None),
        "loud": make_clip(d / "loud.mp4", size=(320, 240), duration=1.5, audio="loud"),
        "mono": make_clip(d / "mono.mp4", size=(320, 240), duration=1.5, audio="mono"),
        "grey": make_clip(d / "grey.mp4", size=(854, 480), duration=1.0, video="color=c=0x606060"),
        "sd601": make_clip(
            d / "sd601.mp4", size=(640, 480), duration=0.5, extra=["-vf", "setparams=colorspace=smpte170m"]
        ),
    }


def _render(src: Path, tmp_path: Path, **spec: object):
    spec.setdefault("x264_preset", FAST)
    out = tmp_path / "out" / "final.mp4"
    result = render_final(src, FinishSpec(**spec), out, tmp_path / "scratch")
    return result, out


@pytest.mark.parametrize("fit", ["cover", "contain"])
@pytest.mark.parametrize(
    ("fmt", "frame"), [("landscape", (854, 480)), ("portrait", (480, 854)), ("square", (480, 480))]
)
def test_frame_size_per_format_and_fit(src, tmp_path: Path, fmt: str, frame: tuple[int, int], fit: str) -> None:
    result, out = _render(src["landscape"], tmp_path, format=fmt, resolution="480p", fit=fit, trim=(0.0, 0.5), fade=0)
    info = probe(out)
    assert (info.width, info.height) == frame == (result.width, result.height)
    if fit == "contain" and fmt != "landscape":
        frames = gray_frames(out)
        assert frames[:, :8, :].max() < 20  # letterbox bars are black
        assert frames[:, frame[1] // 2, :].mean() > 40  # the picture is in the middle


def test_720p_and_explicit_size(src, tmp_path: Path) -> None:
    _, out = _render(src["square"], tmp_path, format="portrait", resolution="720p", fade=0, trim=(0, 0.25))
    assert (probe(out).width, probe(out).height) == (720, 1280)
    _, out = _render(src["square"], tmp_path, width=640, height=360, fit="contain", fade=0, trim=(0, 0.25))
    assert (probe(out).width, probe(out).height) == (640, 360)


def test_deliverable_encoding_audio_loudness_faststart(src, tmp_path: Path) -> None:
    result, out = _render(
        src["landscape"],
        tmp_path,
        resolution="480p",
        title="Dawn",
        tags={"storyboard_id": "harbor", "shot_id": "s01"},
    )
    info = probe(out)
    assert (info.video_codec, info.profile, info.pix_fmt) == ("h264", "High", "yuv420p")
    assert (info.color_space, info.color_primaries, info.color_transfer, info.color_range) == (
        "bt709",
        "bt709",
        "bt709",
        "tv",
    )
    assert info.fps == 24
    assert (info.audio_codec, info.audio_profile, info.audio_rate, info.audio_channels) == (
        "aac",
        "LC",
        48000,
        2,
    )
    assert faststart_ok(out)
    assert decode_check(out).video_frames == 48
    # This source is quiet and peaky: the gain alone would break the ceiling, so the limiter path is used.
    step = next(s for s in result.steps if s["step"] == "loudness")
    assert step["mode"].startswith("linear gain + true-peak limiter")
    integrated, peak = measure_loudness(out)
    assert integrated == pytest.approx(-14, abs=1.0)
    assert peak <= -1.0
    assert info.tags["title"] == "Dawn" and info.tags["shot_id"] == "s01"
    # Lineage: every step, no path of this machine anywhere.
    names = [s["step"] for s in result.steps]
    assert {"source", "conform_rate", "colour", "fit", "fade", "audio_conform", "loudness", "encode"} <= set(names)
    assert result.encoder["video"]["preset"] == FAST
    dumped = json.dumps(result.model_dump())
    assert str(tmp_path) not in dumped and "/tmp" not in dumped
    assert len(result.ffmpeg_commands) == 2 and all(c.startswith("ffmpeg ") for c in result.ffmpeg_commands)


def test_bt601_source_is_converted_to_bt709(src, tmp_path: Path) -> None:
    assert probe(src["sd601"]).color_space == "smpte170m"
    result, out = _render(src["sd601"], tmp_path, resolution="480p", fade=0)
    colour = next(s for s in result.steps if s["step"] == "colour")
    assert colour["converted"] and colour["from"] == "bt601-6-525"
    info = probe(out)
    assert (info.color_space, info.color_primaries, info.color_transfer) == ("bt709", "bt709", "bt709")


def test_loud_input_is_brought_down_within_the_peak_ceiling(src, tmp_path: Path) -> None:
    result, out = _render(src["loud"], tmp_path, resolution="480p", loudness_lufs=-20)
    step = next(s for s in result.steps if s["step"] == "loudness")
    assert step["mode"] == "linear gain" and step["gain_db"] < 0 and step["filter"].startswith("volume=")
    integrated, peak = measure_loudness(out)
    assert integrated == pytest.approx(-20, abs=1.0)
    assert peak <= -1.0


def test_mono_44k_becomes_48k_stereo(src, tmp_path: Path) -> None:
    _, out = _render(src["mono"], tmp_path, resolution="480p", fade=0)
    info = probe(out)
    assert (info.audio_rate, info.audio_channels) == (48000, 2)
    assert measure_loudness(out)[0] == pytest.approx(-14, abs=1.0)


def test_trim_gives_exact_duration(src, tmp_path: Path) -> None:
    result, out = _render(src["landscape"], tmp_path, resolution="480p", trim=(0.3, 1.55), fade=0.2)
    assert result.duration_s == pytest.approx(1.25, abs=1 / 24)
    assert probe(out).duration_s == pytest.approx(1.25, abs=1 / 24)
    assert decode_check(out).video_frames == 30


def test_fades_from_and_to_black(src, tmp_path: Path) -> None:
    _, out = _render(src["landscape"], tmp_path, resolution="480p", fade=0.5)
    luma = gray_frames(out).reshape(48, -1).mean(axis=1)
    assert luma[0] < 5 and luma[-1] < 5  # first and last frames are black
    assert luma[24] > 60  # the middle is not
    assert luma[3] < luma[6] < luma[9] < luma[24]  # ramps up


def test_fade_longer_than_half_the_clip_is_clamped(src, tmp_path: Path) -> None:
    result, out = _render(src["square"], tmp_path, resolution="480p", fade=3)
    fade = next(s for s in result.steps if s["step"] == "fade")
    assert fade["frames"] == 12 and fade["requested_s"] == 3
    assert decode_check(out).video_frames == 24


def test_long_caption_is_wrapped_inside_the_title_safe_area(src, tmp_path: Path) -> None:
    caption = (
        "The fishing boats come home at dawn while gulls argue over the nets, jumping quays, "
        "piers and yards; everyone agrees the light is gorgeous"
    )
    result, out = _render(src["grey"], tmp_path, format="portrait", resolution="480p", fade=0, caption=caption)
    assert result.has_caption
    layout = next(s for s in result.steps if s["step"] == "caption")
    assert len(layout["lines"]) > 1 and not layout["truncated"]
    assert " ".join(layout["lines"]) == caption
    w, h = 480, 854
    assert layout["x"] >= 0.05 * w - 1 and layout["x"] + layout["width"] <= 0.95 * w + 1
    assert layout["y"] + layout["height"] <= 0.95 * h + 1

    frame = gray_frames(out)[12]
    white = np.argwhere(frame > 200)  # the text (the source is mid grey, the box darkens it)
    assert len(white) > 500
    (top, left), (bottom, right) = white.min(axis=0), white.max(axis=0)
    assert left >= 0.05 * w - 1 and right <= 0.95 * w + 1
    assert top >= h / 2 and bottom <= 0.95 * h + 1
    # The box darkens the picture under it; above the box the grey is untouched.
    assert frame[layout["y"] + 2, w // 2] < 60
    assert abs(int(frame[layout["y"] - 20, w // 2]) - 96) < 12


def test_caption_keeps_descenders_inside_its_box(tmp_path: Path) -> None:
    layout = render_caption("gjpqy gjpqy", 854, 480, tmp_path / "c.png")
    alpha = np.asarray(Image.open(tmp_path / "c.png"))[..., :3].min(axis=2)
    ink = np.argwhere(alpha > 200)  # white text pixels
    assert ink[:, 0].max() < layout.height - 3  # tails end above the box's bottom edge
    assert ink[:, 0].min() > 2 and ink[:, 1].min() > 2 and ink[:, 1].max() < layout.width - 3


def test_silent_stereo_track_is_added(src, tmp_path: Path) -> None:
    result, out = _render(src["silent"], tmp_path, resolution="480p")
    info = probe(out)
    assert info.has_audio and (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", 48000, 2)
    assert measure_loudness(out)[0] <= -69  # silence
    assert any(s["step"] == "silent_audio" for s in result.steps)


def test_failure_leaves_nothing_behind(src, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="past the end"):
        _render(src["square"], tmp_path, trim=(5.0, 6.0))
    out_dir = tmp_path / "out"
    assert not out_dir.exists() or list(out_dir.iterdir()) == []
    scratch = tmp_path / "scratch"
    assert not scratch.exists() or list(scratch.iterdir()) == []


def test_scratch_is_cleaned_after_success(src, tmp_path: Path) -> None:
    _, out = _render(src["square"], tmp_path, caption="Hello", fade=0)
    assert list((tmp_path / "scratch").iterdir()) == []
    assert [p.name for p in out.parent.iterdir()] == ["final.mp4"]


def test_thumbnail_is_a_middle_frame_not_black(src, tmp_path: Path) -> None:
    _, out = _render(src["landscape"], tmp_path, resolution="480p", fade=0.5)
    jpg = tmp_path / "thumb.jpg"
    info = make_thumbnail(out, jpg, fade_s=0.5)
    with Image.open(jpg) as im:
        assert im.format == "JPEG" and im.size == (854, 480)
        assert np.asarray(im.convert("L")).mean() > 40
    assert info["at_s"] == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize(
    "bad",
    [
        {"width": 640},
        {"width": 641, "height": 360},
        {"trim": (2.0, 1.0)},
        {"fade": -1},
        {"tags": {"bad key": "x"}},
        {"x264_preset": "ultrafast"},
        {"loudness_lufs": 0},
    ],
)
def test_spec_validation(bad: dict) -> None:
    with pytest.raises(ValidationError):
        FinishSpec(**bad)


def test_spec_frames() -> None:
    assert FinishSpec(format="landscape", resolution="480p").frame == (854, 480)
    assert FinishSpec(format="portrait", resolution="720p").frame == (720, 1280)
    assert FinishSpec(format="square", resolution="720p").frame == (720, 720)
    assert FinishSpec().x264_preset == "medium"
