"""Finishing options, each checked by decoding the output: contain fills, speed, logo, music bed, caption
position and timing, one decode / one encode, no edit lists with sound in sync, the thumbnail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from shotline.media.postprocess import FinishSpec, LogoSpec, MusicSpec, make_thumbnail, render_final
from shotline.media.probe import decode_check, edit_lists, measure_loudness, probe
from testkit.mediakit import audio_samples, gray_frames, make_clip, make_lavfi, rgb_frame

FAST = "veryfast"
RED_LOGO = (220, 20, 20)


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("option-sources")
    logo = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    ImageDraw.Draw(logo).rectangle((0, 0, 199, 99), fill=(*RED_LOGO, 255))
    logo.save(d / "logo.png")
    return {
        # left half yellow, right half blue: a blurred fill shows both colours in the bars
        "halves": make_lavfi(
            d / "halves.mp4",
            "color=c=yellow:s=640x360:r=24:d=2[l];color=c=blue:s=320x360:r=24:d=2[r];[l][r]overlay=x=320",
            "anoisesrc=color=pink:seed=7:amplitude=0.1:r=48000:d=2",
        ),
        "grey": make_clip(d / "grey.mp4", size=(854, 480), duration=2.0, video="color=c=0x606060"),
        "silent_grey": make_clip(d / "sgrey.mp4", size=(854, 480), duration=2.0, video="color=c=0x606060", audio=None),
        "counter": make_clip(d / "counter.mp4", size=(640, 360), duration=3.0),
        # a white flash at 1.0 s and a tone burst at 1.0 s, to measure sync
        "sync": make_lavfi(
            d / "sync.mp4",
            "color=c=black:s=320x240:r=24:d=2,format=yuv420p,geq=lum='if(between(N,24,25),235,16)':cb=128:cr=128",
            "aevalsrc='if(between(t,1,1.08),0.5*sin(2*PI*1000*t),0)':s=48000:d=2",
            extra=["-bf", "2"],
        ),
        "tone": make_clip(d / "tone.mp4", size=(64, 64), duration=0.7, audio="tone"),
        "logo": d / "logo.png",
    }


def _render(src: Path, tmp_path: Path, **spec: object):
    spec.setdefault("x264_preset", FAST)
    out = tmp_path / "out" / "final.mp4"
    return render_final(src, FinishSpec(**spec), out, tmp_path / "scratch"), out


def test_contain_with_plain_colour_and_with_blurred_fill(src, tmp_path: Path) -> None:
    _, out = _render(src["halves"], tmp_path, format="portrait", resolution="480p", fit="contain", fill="white", fade=0)
    frame = rgb_frame(out, 1.0)
    assert (frame.shape[1], frame.shape[0]) == (480, 854)
    assert frame[:100].min() > 235  # white bars above and below the picture
    assert frame[427, 60, 0] > 200 and frame[427, 60, 2] < 60  # the yellow left half in the middle

    result, out = _render(
        src["halves"], tmp_path, format="portrait", resolution="480p", fit="contain", fill="blur", fade=0
    )
    fit = next(s for s in result.steps if s["step"] == "fit")
    assert fit["fill"] == "blur" and fit["letterbox"] == {"x": 0, "y": 292}
    frame = rgb_frame(out, 1.0).astype(int)
    top_bar = frame[20:250]
    # The bars hold the picture blurred: yellowish on the left, bluish on the right, a soft ramp between.
    assert top_bar[:, 20, 0].mean() > 150 and top_bar[:, 20, 2].mean() < 90
    assert top_bar[:, 460, 2].mean() > 120 and top_bar[:, 460, 0].mean() < 80
    middle = top_bar[:, 230:250, 0].mean()
    assert 40 < middle < 200  # blurred across the edge, not a hard cut
    assert frame[427, 60, 0] > 200  # the sharp picture is intact


def test_speed_change_shortens_both_streams_and_keeps_pitch(src, tmp_path: Path) -> None:
    result, out = _render(src["grey"], tmp_path, resolution="480p", speed=2.0, fade=0)
    assert result.duration_s == pytest.approx(1.0)
    assert decode_check(out).video_frames == 24
    info = probe(out)
    assert info.duration_s == pytest.approx(1.0, abs=1 / 24)
    assert len(audio_samples(out)) / 48000 == pytest.approx(1.0, abs=0.03)
    # The 997 Hz tone played twice as fast is still 997 Hz (time-stretched, not resampled).
    _, out = _render(src["tone"], tmp_path, width=64, height=64, speed=2.0, fade=0)
    samples = audio_samples(out)[2400:14400]
    peak_hz = np.fft.rfftfreq(len(samples), 1 / 48000)[np.argmax(np.abs(np.fft.rfft(samples)))]
    assert peak_hz == pytest.approx(997, abs=10)
    # Slow motion, with a trim: 1 s of source at 0.5x lasts 2 s.
    result, out = _render(src["counter"], tmp_path, resolution="480p", trim=(1.0, 2.0), speed=0.5, fade=0.25)
    assert decode_check(out).video_frames == 48
    step = next(s for s in result.steps if s["step"] == "speed")
    assert step["source_s"] == 1.0 and step["output_s"] == 2.0
    luma = gray_frames(out).reshape(48, -1).mean(axis=1)
    assert luma[0] < 5 and luma[-1] < 5 and luma[24] > 40  # fades in output time


def test_logo_position_scale_and_opacity(src, tmp_path: Path) -> None:
    logo = LogoSpec(path=src["logo"], position="bottom-right", scale=0.2, opacity=0.5)
    result, out = _render(src["grey"], tmp_path, resolution="480p", fade=0, logo=logo)
    step = next(s for s in result.steps if s["step"] == "logo")
    assert (step["width"], step["height"]) == (170, 85) and step["file"] == "logo.png"
    assert step["x"] + step["width"] == 854 - 43 and step["y"] + step["height"] == 480 - 24
    frame = rgb_frame(out, 1.0).astype(int)
    cx, cy = step["x"] + step["width"] // 2, step["y"] + step["height"] // 2
    # Half-opaque red over grey 0x60: about (96 + 220) / 2 red, 96 / 2 + 10 green.
    r, g, _ = frame[cy, cx]
    assert 140 < r < 175 and 45 < g < 75
    assert abs(frame[cy, step["x"] - 10] - 96).max() < 10  # beside the logo the picture is untouched
    assert abs(frame[20, 20] - 96).max() < 10


def test_caption_top_and_middle_with_start_and_end(src, tmp_path: Path) -> None:
    result, out = _render(
        src["grey"], tmp_path, resolution="480p", fade=0, caption="Top line", caption_position="top",
        caption_start=0.5, caption_end=1.5,
    )  # fmt: skip
    layout = next(s for s in result.steps if s["step"] == "caption")
    assert layout["position"] == "top" and layout["y"] == 24 and (layout["start_s"], layout["end_s"]) == (0.5, 1.5)
    frames = gray_frames(out)
    white = [int((f[: 480 // 2] > 200).sum()) for f in frames]
    assert all(w == 0 for w in white[:12]) and all(w == 0 for w in white[36:])  # before 0.5 s, from 1.5 s on
    assert all(w > 200 for w in white[12:36])
    assert (frames[24][240:] > 200).sum() == 0  # nothing in the lower half

    result, out = _render(src["grey"], tmp_path, resolution="480p", fade=0, caption="Middle", caption_position="middle")
    layout = next(s for s in result.steps if s["step"] == "caption")
    assert abs(layout["y"] + layout["height"] / 2 - 240) <= 1
    ink = np.argwhere(gray_frames(out)[5] > 200)
    assert ink[:, 0].min() > 180 and ink[:, 0].max() < 300


def test_caption_start_past_the_end_is_an_error(src, tmp_path: Path) -> None:
    from shotline.errors import MediaError

    with pytest.raises(MediaError, match="caption_start"):
        _render(src["grey"], tmp_path, resolution="480p", caption="Late", caption_start=5.0)


def test_music_bed_sits_under_the_clip_and_the_mix_is_on_target(src, tmp_path: Path) -> None:
    bed = MusicSpec(path=src["tone"], level_db=-10)
    result, out = _render(src["grey"], tmp_path, resolution="480p", fade=0.2, music=bed)
    step = next(s for s in result.steps if s["step"] == "music_bed")
    assert step["loop"] and step["relative_to"] == "clip audio" and step["file"] == "tone.mp4"
    integrated, peak = measure_loudness(out)
    assert integrated == pytest.approx(-14, abs=1.0) and peak <= -1.0
    # The 997 Hz bed is there, about 10 dB under the pink noise, all along (looped past its 0.7 s).
    samples = audio_samples(out)
    for start in (0.5, 1.5):
        chunk = samples[int(start * 48000) : int((start + 0.4) * 48000)]
        spectrum = np.abs(np.fft.rfft(chunk))
        freqs = np.fft.rfftfreq(len(chunk), 1 / 48000)
        tone = spectrum[(freqs > 990) & (freqs < 1005)].max()
        noise_floor = np.median(spectrum[(freqs > 1500) & (freqs < 3000)])
        assert tone > 20 * noise_floor
    # Under a silent clip the bed becomes the soundtrack, at the target.
    result, out = _render(src["silent_grey"], tmp_path, resolution="480p", fade=0.2, music=bed)
    assert next(s for s in result.steps if s["step"] == "music_bed")["relative_to"] == "target loudness"
    assert measure_loudness(out)[0] == pytest.approx(-14, abs=1.0)


def test_full_chain_decodes_once_and_encodes_once(src, tmp_path: Path) -> None:
    logo = LogoSpec(path=src["logo"])
    result, _ = _render(src["counter"], tmp_path, format="portrait", resolution="480p", trim=(0.5, 2.5),
                        caption="Everything at once", logo=logo)  # fmt: skip
    decodes = result.decodes()
    assert decodes["source#0 (h264)"] == 1 and decodes["source#1 (aac)"] == 1
    assert result.encodes()["libx264"] == 1 and result.encodes()["aac"] == 1
    assert [p["pass"] for p in result.passes] == ["audio", "render"]
    assert result.passes[0]["decoded"] == ["source#1 (aac)"]  # the audio pass leaves the picture alone


def test_no_edit_lists_and_sound_in_sync_to_the_sample(src, tmp_path: Path) -> None:
    def onsets(path: Path) -> tuple[float, float]:
        luma = gray_frames(path).reshape(-1, 320 * 240 if "sync" in path.name else 854 * 480).mean(axis=1)
        samples = audio_samples(path)
        return float(np.argmax(luma > 100)) / 24, float(np.argmax(np.abs(samples) > 0.05)) / 48000

    assert edit_lists(src["sync"])  # the source has them (ffmpeg's default)
    video_at, audio_at = onsets(src["sync"])
    _, out = _render(src["sync"], tmp_path, resolution="480p", fade=0)
    assert edit_lists(out) == []
    out_video, out_audio = onsets(out)
    assert out_video == video_at == 1.0
    # Without an edit list a player plays the AAC priming too; it is compensated, so the offset is unchanged.
    assert out_audio - out_video == pytest.approx(audio_at - video_at, abs=0.002)


def test_thumbnail_is_never_a_faded_frame(src, tmp_path: Path) -> None:
    _, out = _render(src["grey"], tmp_path, resolution="480p", fade=0.75)
    luma = gray_frames(out).reshape(48, -1).mean(axis=1)
    assert luma[0] < 5 and luma[10] < 0.9 * luma[24]  # most of the clip is fading
    info = make_thumbnail(out, tmp_path / "thumb.jpg", fade_s=0.75)
    assert 0.75 <= info["at_s"] <= 1.25
    with Image.open(tmp_path / "thumb.jpg") as im:
        thumb = np.asarray(im.convert("L")).mean()
    assert thumb == pytest.approx(luma[24], abs=4)  # as bright as the unfaded middle


def test_lineage_tags_are_in_the_mp4(src, tmp_path: Path) -> None:
    tags = {
        "storyboard": "harbor-teaser",
        "shot": "s01-boats",
        "generator": "fal",
        "model": "xai/grok-imagine-video/v1.5/image-to-video",
        "request_id": "req-123",
        "lineage": "s3://bucket/clips/harbor-teaser/s01-boats/latest.json",
    }
    _, out = _render(src["grey"], tmp_path, resolution="480p", title="Harbor teaser: s01-boats", tags=tags)
    found = probe(out).tags
    assert found["title"] == "Harbor teaser: s01-boats"
    assert {k: found.get(k) for k in tags} == tags
