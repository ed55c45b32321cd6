"""Reels: crossfades and cuts, chapters, loudness, conforming odd clips, edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shotline.errors import MediaError
from shotline.media.probe import decode_check, faststart_ok, measure_loudness, probe
from shotline.media.reel import render_reel
from testkit.mediakit import ffmpeg_i, make_clip

FAST = "veryfast"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("reel-clips")
    return {
        "a": make_clip(d / "a.mp4", duration=2.0),
        "b": make_clip(d / "b.mp4", duration=1.5, video="mandelbrot"),
        "c": make_clip(d / "c.mp4", duration=2.5, audio="loud"),
        "square_silent": make_clip(d / "sq.mp4", size=(480, 480), duration=1.0, audio=None),
        "short": make_clip(d / "short.mp4", duration=1.0),
    }


def test_crossfade_reel(clips: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "reel.mp4"
    result = render_reel(
        [clips["a"], clips["b"], clips["c"]],
        out,
        tmp_path / "scratch",
        transition="crossfade",
        transition_seconds=0.5,
        chapters=["Boats", "Gulls", "Dusk; the end"],
        title="Harbor teaser",
        tags={"storyboard_id": "harbor"},
        x264_preset=FAST,
    )
    expected = 2.0 + 1.5 + 2.5 - 2 * 0.5
    assert result.duration_s == pytest.approx(expected, abs=1 / 24)
    info = probe(out)
    assert info.duration_s == pytest.approx(expected, abs=1 / 24)
    assert decode_check(out).video_frames == round(expected * 24)
    assert (info.width, info.height, info.fps) == (854, 480, 24)
    assert (info.video_codec, info.profile, info.pix_fmt, info.color_space) == (
        "h264",
        "High",
        "yuv420p",
        "bt709",
    )
    assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", 48000, 2)
    assert faststart_ok(out)
    integrated, peak = measure_loudness(out)
    assert integrated == pytest.approx(-14, abs=1.0) and peak <= -1.0
    assert info.tags["title"] == "Harbor teaser" and info.tags["storyboard_id"] == "harbor"

    # Chapters: one per shot, boundaries in the middle of each dissolve, as ffmpeg reads them back.
    text = ffmpeg_i(out)
    assert "Chapter #0:2" in text and "Dusk; the end" in text
    assert [(c.title, c.start_s, c.end_s) for c in info.chapters] == [
        ("Boats", 0.0, 1.75),
        ("Gulls", 1.75, 2.75),
        ("Dusk; the end", 2.75, 5.0),
    ]
    assert [(c.title, c.start_s, c.end_s) for c in result.chapters] == [
        (c.title, c.start_s, c.end_s) for c in info.chapters
    ]
    dumped = json.dumps(result.model_dump())
    assert str(tmp_path) not in dumped
    assert list((tmp_path / "scratch").iterdir()) == []


def test_cut_reel_conforms_odd_clips(clips: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cut.mp4"
    result = render_reel(
        [clips["a"], clips["square_silent"], clips["b"]],
        out,
        tmp_path / "s",
        transition="cut",
        transition_seconds=0.5,
        x264_preset=FAST,
    )
    assert result.duration_s == pytest.approx(4.5, abs=1 / 24)
    assert result.transition_seconds == 0
    info = probe(out)
    assert (info.width, info.height) == (854, 480)  # the square clip was letterboxed into the first's frame
    assert decode_check(out).video_frames == 108
    assert [c.title for c in info.chapters] == ["Shot 1", "Shot 2", "Shot 3"]
    assert [c.start_s for c in info.chapters] == [0.0, 2.0, 3.0]
    conform = next(s for s in result.steps if s["step"] == "conform")
    assert "conformed" in conform["clips"][1] and not conform["clips"][1]["has_audio"]


def test_single_clip_reel(clips: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "one.mp4"
    result = render_reel([clips["b"]], out, tmp_path / "s", chapters=["Only"], x264_preset=FAST)
    assert result.duration_s == pytest.approx(1.5, abs=1 / 24)
    info = probe(out)
    assert info.duration_s == pytest.approx(1.5, abs=1 / 24)
    assert [(c.title, c.start_s, c.end_s) for c in info.chapters] == [("Only", 0.0, 1.5)]


def test_transition_longer_than_a_clip_is_clamped(clips: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "clamped.mp4"
    result = render_reel(
        [clips["short"], clips["a"]],
        out,
        tmp_path / "s",
        transition="crossfade",
        transition_seconds=5,
        x264_preset=FAST,
    )
    assert result.transition_seconds == 0.5  # half the 1 s clip
    assert any("transition_clamped" in s for s in result.steps)
    assert probe(out).duration_s == pytest.approx(1.0 + 2.0 - 0.5, abs=1 / 24)


def test_bad_arguments(clips: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="at least one clip"):
        render_reel([], tmp_path / "x.mp4", tmp_path)
    with pytest.raises(MediaError, match="chapter titles"):
        render_reel([clips["a"], clips["b"]], tmp_path / "x.mp4", tmp_path, chapters=["one"])
    assert not (tmp_path / "x.mp4").exists()


def test_reel_decodes_each_clip_once_encodes_once_and_has_no_edit_lists(clips: dict[str, Path], tmp_path: Path) -> None:
    from shotline.media.probe import edit_lists

    out = tmp_path / "reel.mp4"
    result = render_reel([clips["a"], clips["b"]], out, tmp_path / "s", transition_seconds=0.25, x264_preset=FAST)
    decodes = [d for p in result.passes for d in p["decoded"]]
    for clip in ("clip1", "clip2"):
        assert decodes.count(f"{clip}#0 (h264)") == 1 and decodes.count(f"{clip}#1 (aac)") == 1
    encodes = [e for p in result.passes for e in p["encoded"]]
    assert encodes.count("libx264") == 1 and encodes.count("aac") == 1
    assert edit_lists(out) == [] and faststart_ok(out)


def test_reel_thumbnail_comes_from_a_shot_not_a_dissolve(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from shotline.media.postprocess import FinishSpec, make_thumbnail, render_final

    finals = []
    for i in range(2):
        grey = make_clip(tmp_path / f"g{i}.mp4", size=(854, 480), duration=2.0, video="color=c=0x808080")
        spec = FinishSpec(resolution="480p", fade=0.5, x264_preset=FAST)
        render_final(grey, spec, tmp_path / f"final{i}.mp4", tmp_path / "s")
        finals.append(tmp_path / f"final{i}.mp4")
    out = tmp_path / "reel.mp4"
    result = render_reel(finals, out, tmp_path / "s", transition_seconds=0.5, x264_preset=FAST)
    # The middle of this reel is the dissolve between two fades to black.
    make_thumbnail(out, tmp_path / "naive.jpg", 0.5)
    longest = max(result.chapters, key=lambda c: c.end_s - c.start_s)
    make_thumbnail(out, tmp_path / "thumb.jpg", 1.0, window=(longest.start_s, longest.end_s))
    with Image.open(tmp_path / "naive.jpg") as naive, Image.open(tmp_path / "thumb.jpg") as thumb:
        assert np.asarray(naive.convert("L")).mean() < 60
        assert np.asarray(thumb.convert("L")).mean() > 110
