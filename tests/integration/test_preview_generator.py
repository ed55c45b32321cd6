"""The offline preview generator, checked by decoding what it writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from shotline.errors import GenerationError
from shotline.generators.base import GenerationRequest, Generator
from shotline.generators.preview import PreviewGenerator, choose_motion
from shotline.media.probe import decode_check, faststart_ok, measure_loudness, probe
from testkit.mediakit import gray_frames


def _still(path: Path, size: tuple[int, int]) -> Path:
    """A picture with detail everywhere, so any move shows."""
    im = Image.new("RGB", size, (40, 60, 90))
    draw = ImageDraw.Draw(im)
    for i in range(0, size[0], 24):
        draw.line((i, 0, size[0] - i, size[1]), fill=(200, 180 - i % 120, 90), width=3)
    im.save(path)
    return path


def _request(image: Path, size: tuple[int, int], *, key: str, duration: int, resolution: str = "480p"):
    return GenerationRequest(
        storyboard_id="harbor",
        shot_id="s01-boats",
        clip_key=key,
        prompt="slow dolly-in on boats",
        image_path=image,
        image_sha256="0" * 64,
        image_width=size[0],
        image_height=size[1],
        duration=duration,
        resolution=resolution,
    )


def _key_for(kind: str) -> str:
    return next(k for k in (f"clip-{i}" for i in range(1000)) if choose_motion(k).kind == kind)


def test_preview_clip_is_to_spec(tmp_path: Path) -> None:
    size = (960, 600)
    image = _still(tmp_path / "still.png", size)
    work = tmp_path / "work"
    work.mkdir()
    logs: list[str] = []
    gen: Generator = PreviewGenerator()
    result = gen.generate(_request(image, size, key="k-landscape", duration=2), work, logs.append)

    assert result.generator == "preview" and result.model is None and gen.name == "preview"
    assert result.preview is True and result.cost_usd == 0 and result.request_id is None
    assert {"prompt", "duration", "resolution", "motion"} <= set(result.parameters)
    assert result.parameters["prompt"] == "slow dolly-in on boats"
    assert result.video_path.parent == work and result.video_path.is_file()
    assert sorted(p.name for p in work.iterdir()) == [result.video_path.name]  # no temp files left
    assert logs

    info = probe(result.video_path)
    assert (info.width, info.height) == (854, 480) == (result.width, result.height)
    assert info.fps == 24 == result.fps
    assert info.duration_s == pytest.approx(2.0, abs=1 / 24)
    assert (info.video_codec, info.profile, info.pix_fmt, info.color_space) == (
        "h264",
        "High",
        "yuv420p",
        "bt709",
    )
    assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", 48000, 2)
    assert decode_check(result.video_path).video_frames == 48
    assert faststart_ok(result.video_path)
    integrated, peak = measure_loudness(result.video_path)
    assert -34 <= integrated <= -26 and peak < -10  # a quiet bed

    frames = gray_frames(result.video_path)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1  # the camera moved


@pytest.mark.parametrize(("size", "expected"), [((600, 1000), (480, 854)), ((700, 680), (480, 480))])
def test_preview_frame_follows_the_still(tmp_path: Path, size: tuple[int, int], expected: tuple[int, int]) -> None:
    image = _still(tmp_path / "still.png", size)
    result = PreviewGenerator().generate(_request(image, size, key="k", duration=1), tmp_path, lambda _: None)
    info = probe(result.video_path)
    assert (info.width, info.height) == expected
    assert info.duration_s == pytest.approx(1.0, abs=1 / 24)


def test_pan_is_smooth(tmp_path: Path) -> None:
    """Track a bright dot through a pan: it moves one way only, with no frame-to-frame jitter."""
    size = (854, 480)
    im = Image.new("RGB", size, (10, 10, 10))
    ImageDraw.Draw(im).ellipse((200, 140, 224, 164), fill=(255, 255, 255))
    image = tmp_path / "dot.png"
    im.filter(ImageFilter.GaussianBlur(2)).save(image)
    key = _key_for("pan-left")
    result = PreviewGenerator().generate(_request(image, size, key=key, duration=2), tmp_path, lambda _: None)
    frames = gray_frames(result.video_path).astype(float)
    weights = np.clip(frames - 60, 0, None)
    xs = (weights * np.arange(size[0])).sum(axis=(1, 2)) / weights.sum(axis=(1, 2))
    steps = np.diff(xs)
    assert xs[-1] - xs[0] > 10  # a pan left moves the picture right
    assert steps.min() > -0.1  # never backwards
    assert np.abs(np.diff(steps)).max() < 0.5  # no jumps between frames


def test_motion_is_deterministic_and_stays_inside_the_picture() -> None:
    assert choose_motion("abc") == choose_motion("abc")
    kinds = set()
    for i in range(300):
        m = choose_motion(f"key-{i}")
        kinds.add(m.kind)
        for zoom, (cx, cy) in ((m.zoom_start, m.center_start), (m.zoom_end, m.center_end)):
            assert 1.0 <= zoom <= 1.12
            half = 0.5 / zoom
            assert half <= cx <= 1 - half and half <= cy <= 1 - half
    assert kinds == {"push-in", "pull-out", "pan-left", "pan-right"}


def test_unreadable_image_is_a_generation_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(GenerationError) as err:
        PreviewGenerator().generate(_request(bad, (640, 360), key="k", duration=1), tmp_path, lambda _: None)
    assert not err.value.retryable and not err.value.billed
    assert [p.name for p in tmp_path.iterdir()] == ["bad.png"]
