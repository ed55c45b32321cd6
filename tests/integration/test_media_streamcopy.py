"""No pixel change, no re-encode: the video packets come out byte for byte (and the audio too when it is
already right), with the tags, moov first, no edit lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from shotline.media.postprocess import FinishSpec, render_final
from shotline.media.probe import edit_lists, faststart_ok, measure_loudness, probe
from testkit.mediakit import make_clip, packet_md5

FAST = "veryfast"


@pytest.fixture(scope="module")
def deliverable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 480p landscape clip at -14 LUFS: already what a no-fade, no-caption spec asks for."""
    d = tmp_path_factory.mktemp("copy")
    src = make_clip(d / "src.mp4", size=(640, 360), duration=2.0)
    out = d / "deliverable.mp4"
    result = render_final(src, FinishSpec(resolution="480p", fade=0, x264_preset=FAST), out, d / "scratch")
    assert result.mode == "render"
    return out


def _finish(src: Path, tmp_path: Path, **spec: object):
    out = tmp_path / "copy.mp4"
    return render_final(src, FinishSpec(resolution="480p", fade=0, **spec), out, tmp_path / "scratch"), out


def test_no_op_is_a_stream_copy(deliverable: Path, tmp_path: Path) -> None:
    tags = {"storyboard": "harbor", "shot": "s01", "generator": "preview", "request_id": "r-1"}
    result, out = _finish(deliverable, tmp_path, title="Harbor: s01", tags=tags)
    assert result.mode == "stream copy"
    assert packet_md5(out, "v") == packet_md5(deliverable, "v")  # not re-encoded
    assert packet_md5(out, "a") == packet_md5(deliverable, "a")
    assert result.encodes() == {"pcm_s16le": 1}  # only the loudness meter's sink: no video or audio encoder
    assert result.passes[0]["copied"] == ["source#0", "source#1"]
    info = probe(out)
    assert info.tags["title"] == "Harbor: s01" and info.tags["request_id"] == "r-1" and info.tags["shot"] == "s01"
    assert faststart_ok(out) and edit_lists(out) == []
    copy_step = next(s for s in result.steps if s["step"] == "stream_copy")
    assert copy_step["audio"] == "copied" and abs(copy_step["loudness"]["integrated_lufs"] + 14) <= 0.5


def test_loudness_off_target_encodes_only_the_audio(deliverable: Path, tmp_path: Path) -> None:
    result, out = _finish(deliverable, tmp_path, loudness_lufs=-23)
    assert result.mode == "video copy"
    assert packet_md5(out, "v") == packet_md5(deliverable, "v")
    assert packet_md5(out, "a") != packet_md5(deliverable, "a")
    assert measure_loudness(out)[0] == pytest.approx(-23, abs=1.0)
    assert result.encodes().get("aac") == 1 and "libx264" not in result.encodes()
    step = next(s for s in result.steps if s["step"] == "stream_copy")
    assert "off target" in step["audio_reasons"][0]


def test_untagged_colour_is_tagged_without_touching_the_pictures(tmp_path: Path) -> None:
    # H.264 High at the deliverable frame and rate, but no colour tags and mono 44.1 kHz sound.
    src = make_clip(tmp_path / "untagged.mp4", size=(854, 480), duration=1.0, audio="mono",
                    extra=["-profile:v", "high", "-preset", "veryfast"])  # fmt: skip
    assert probe(src).color_space is None
    result, out = _finish(src, tmp_path)
    assert result.mode == "video copy"
    assert packet_md5(out, "v") == packet_md5(src, "v")
    info = probe(out)
    assert (info.color_space, info.color_primaries, info.color_transfer, info.color_range) == (
        "bt709", "bt709", "bt709", "tv",
    )  # fmt: skip
    assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", 48000, 2)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"fade": 0.2}, "fades"),
        ({"caption": "Hello"}, "caption"),
        ({"speed": 1.5}, "speed change"),
        ({"format": "square"}, "frame 854x480 is not 480x480"),
        ({"trim": (0.5, 2.0)}, "trim"),
        ({"stream_copy": False}, "stream copy turned off"),
    ],
)
def test_any_picture_change_re_encodes(deliverable: Path, tmp_path: Path, change: dict, reason: str) -> None:
    spec = {"resolution": "480p", "fade": 0, "x264_preset": FAST, **change}
    result = render_final(deliverable, FinishSpec(**spec), tmp_path / "out.mp4", tmp_path / "scratch")
    assert result.mode == "render"
    assert reason in next(s for s in result.steps if s["step"] == "re-encode")["reasons"]
