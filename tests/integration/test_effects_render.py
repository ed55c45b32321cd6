"""Effects in a real render, checked by decoding the output: the effect is there, the source was decoded once
and the deliverable encoded once, the steps and C2PA actions say so, and the ffmpeg filters used instead of
moviepy give moviepy's picture within a stated tolerance."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shotline.credentials.manifest import finishing_actions
from shotline.media.ffmpeg import ffmpeg_exe
from shotline.media.finish_spec import FinishSpec
from shotline.media.postprocess import FinishResult, render_final
from shotline.media.reverse_frames import CHUNK_BYTES, ChunkedReverseFrames
from testkit.mediakit import audio_samples, gray_frames, make_clip, make_lavfi

# ffmpeg's filter against moviepy's numpy, both then encoded by the same x264: mean absolute difference of the
# decoded rgb24 frames, in 8-bit levels (moviepy truncates to uint8 where colorchannelmixer rounds).
NATIVE_TOLERANCE_LEVELS = 1.0


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("fx") / "src.mp4", size=(640, 360), duration=1.5, audio="speech")


def _finish(src: Path, tmp: Path, name: str, effects: list[dict[str, Any]], **kw: Any) -> tuple[Path, FinishResult]:
    engine = kw.pop("engine", "auto")
    spec = FinishSpec(width=640, height=360, effects=effects, **{"fade": 0.0, **kw})
    out = tmp / f"{name}.mp4"
    return out, render_final(src, spec, out, tmp / "scratch", effects_engine=engine)


def _decode(path: Path, pix_fmt: str) -> bytes:
    return subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip


def rgb_frames_all(path: Path) -> np.ndarray:
    return np.frombuffer(_decode(path, "rgb24"), np.uint8).reshape(-1, 360, 640, 3)


def _chroma(path: Path) -> float:
    """Mean distance of U and V from neutral over the whole clip."""
    yuv = np.frombuffer(_decode(path, "yuv444p"), np.uint8).reshape(-1, 3, 360, 640).astype(np.int16)
    return float(np.abs(yuv[:, 1:] - 128).mean())


def _once(result: FinishResult) -> None:
    """The source's picture decoded once, and one lossy video encode and one AAC encode."""
    video_decodes = {k: v for k, v in result.decodes().items() if k.startswith("source") and "h264" in k}
    assert sum(video_decodes.values()) == 1, result.passes
    encodes = result.encodes()
    assert encodes.get("libx264") == 1 and encodes.get("aac") == 1, encodes
    assert set(encodes) <= {"libx264", "aac", "pcm_f32le", "pcm_s32le"}, encodes  # WAVs are lossless


def test_black_white_through_moviepy_leaves_no_chroma_in_one_decode_and_one_encode(
    source: Path, tmp_path: Path
) -> None:
    plain, _ = _finish(source, tmp_path, "plain", [])
    out, result = _finish(source, tmp_path, "bw", [{"name": "black_white"}], engine="moviepy")
    assert _chroma(plain) > 10 and _chroma(out) < 1.0
    _once(result)
    moviepy_pass = next(p for p in result.passes if p["pass"] == "effects (moviepy)")
    assert moviepy_pass["decoded"] == ["source#video (h264)"]
    render = next(p for p in result.passes if p["pass"] == "render")
    assert "effects#0 (rawvideo)" in render["decoded"] and "source#0 (h264)" not in render["decoded"]
    step = next(s for s in result.steps if s["step"] == "effect")
    assert step["effect"] == "black_white" and step["engine"] == "moviepy"
    kinds = [s["step"] for s in result.steps]
    assert kinds.index("effect") < kinds.index("fit") < kinds.index("loudness")  # before conform and loudness
    assert any(a["action"] == "c2pa.filtered" and "black_white" in a["parameters"]["description"]
               for a in finishing_actions(result))  # fmt: skip


def test_mirror_x_matches_the_hflipped_source_and_the_colours_survive_the_rgb_round_trip(
    source: Path, tmp_path: Path
) -> None:
    plain, _ = _finish(source, tmp_path, "plain", [])
    out, result = _finish(source, tmp_path, "mirror", [{"name": "mirror_x"}], engine="moviepy")
    want, got = rgb_frames_all(plain).astype(np.int16), rgb_frames_all(out).astype(np.int16)
    assert want.shape == got.shape
    assert np.abs(got - want[:, :, ::-1]).mean() < 2.0  # x264 twice over testsrc2's sharp edges
    assert np.abs(got - want).mean() > 20  # and it is really mirrored
    _once(result)


def test_time_mirror_reverses_picture_and_sound_together(tmp_path: Path) -> None:
    # brightness ramps up over the clip, the tone's level too: both must ramp down after the effect
    src = make_lavfi(
        tmp_path / "ramp.mp4",
        "color=c=black:s=320x180:r=24:d=2,format=yuv420p,geq=lum='min(255,T*120)':cb=128:cr=128",
        "aevalsrc='0.45*(t/2)*sin(2*PI*440*t)|0.45*(t/2)*sin(2*PI*440*t)':s=48000:d=2",
    )
    out, result = _finish(src, tmp_path, "reversed", [{"name": "time_mirror"}], loudness_lufs=-20.0)
    luma = gray_frames(out).reshape(48, -1).mean(axis=1)
    assert luma[0] > 200 and luma[-1] < 20 and np.all(np.diff(luma) < 3), luma
    sound = audio_samples(out)
    thirds = [float(np.sqrt(np.mean(part**2))) for part in np.array_split(sound, 3)]
    assert thirds[0] > thirds[1] > thirds[2], thirds
    _once(result)
    # read backwards a chunk at a time: about one reader restart (an ffmpeg seek) per chunk, not one per frame
    moviepy_pass = next(p for p in result.passes if p["pass"] == "effects (moviepy)")
    chunk = moviepy_pass["reverse_chunk_frames"]
    assert 0 < moviepy_pass["reader_restarts"] <= math.ceil(48 / chunk) + 2, moviepy_pass
    assert any(a["action"] == "c2pa.edited" and "time_mirror" in a["parameters"]["description"]
               for a in finishing_actions(result))  # fmt: skip


def test_the_chunked_reverse_reader_gives_the_forward_frames_backwards_with_a_seek_per_chunk(
    tmp_path: Path,
) -> None:
    from moviepy import VideoFileClip

    src = make_clip(tmp_path / "small.mp4", size=(160, 90), duration=2.0, audio=None)
    with VideoFileClip(str(src), audio=False) as clip:
        forward = [clip.get_frame(i / 24).copy() for i in range(48)]
    with VideoFileClip(str(src), audio=False) as clip:
        reader = clip.reader
        seeks = []
        initialize = reader.initialize
        reader.initialize = lambda start_time=0: (seeks.append(start_time), initialize(start_time))
        frames = ChunkedReverseFrames(reader, chunk_frames=10)
        backward = [frames.get_frame(i / 24) for i in range(47, -1, -1)]
    assert frames.chunk == 10
    assert all(np.array_equal(got, want) for got, want in zip(backward, forward[::-1], strict=True))
    assert len(seeks) <= math.ceil(48 / 10) + 1, seeks  # the first (last) frame, then one per chunk
    assert np.abs(forward[0].astype(np.int16) - forward[-1]).mean() > 1  # the frames really differ
    # a chunk never holds more than its byte budget: 24 frames of 720p (2.8 MB each), 3 of 4K (24.9 MB each)
    sizes = {(1280, 720): 24, (3840, 2160): 3}
    for size, want in sizes.items():
        chunk = ChunkedReverseFrames(type("R", (), {"size": size, "depth": 3})()).chunk
        assert chunk == want and chunk * size[0] * size[1] * 3 <= CHUNK_BYTES, (size, chunk)


def test_freeze_lengthens_the_deliverable_with_silence_under_the_held_frame(source: Path, tmp_path: Path) -> None:
    out, result = _finish(source, tmp_path, "freeze", [{"name": "freeze", "t": 0.5, "freeze_duration": 1.0}])
    assert result.duration_s == pytest.approx(2.5)
    frames = gray_frames(out).astype(np.int16)
    assert len(frames) == 60
    held = frames[13:36]  # 0.5 s .. 1.5 s: one frame held
    assert np.abs(np.diff(held, axis=0)).mean() < 1.0 and np.abs(frames[2] - frames[10]).mean() > 1.0
    sound = audio_samples(out)
    rms = lambda a, b: float(np.sqrt(np.mean(sound[int(a * 48000) : int(b * 48000)] ** 2)))  # noqa: E731
    assert rms(0.7, 1.3) < rms(0.0, 0.4) / 20 and rms(1.7, 2.3) > rms(0.7, 1.3) * 20


def test_sound_effects_feed_the_loudness_path(source: Path, tmp_path: Path) -> None:
    plain, _ = _finish(source, tmp_path, "plain", [])
    out, result = _finish(source, tmp_path, "delay", [{"name": "audio_delay", "offset": 0.25, "n_repeats": 2}])
    _once(result)
    # the echoes change the sound; loudness still brings the mix to target
    a, b = audio_samples(plain), audio_samples(out)
    n = min(len(a), len(b))
    assert np.abs(a[:n] - b[:n]).mean() > 0.01
    loud = next(s for s in result.steps if s["step"] == "loudness")
    assert loud["target_lufs"] == -14.0 and "gain_db" in loud
    assert next(p for p in result.passes if p["pass"] == "audio")["decoded"] == ["effects.wav#0 (pcm_s32le)"]


@pytest.mark.parametrize(
    "effect",
    [
        {"name": "black_white"},
        {"name": "black_white", "weights": "crt_phosphor"},
        {"name": "gamma_correction", "gamma": 0.6},
        {"name": "invert_colors"},
        {"name": "mirror_y"},
        {"name": "multiply_color", "factor": 1.4},
    ],
)
def test_the_ffmpeg_filter_gives_moviepys_picture(source: Path, tmp_path: Path, effect: dict[str, Any]) -> None:
    by_moviepy, _ = _finish(source, tmp_path, "moviepy", [effect], engine="moviepy")
    by_ffmpeg, fast = _finish(source, tmp_path, "ffmpeg", [effect])
    assert next(s for s in fast.steps if s["step"] == "effect")["engine"].startswith("ffmpeg ")
    assert not any(p["pass"] == "effects (moviepy)" for p in fast.passes)
    diff = np.abs(rgb_frames_all(by_moviepy).astype(np.int16) - rgb_frames_all(by_ffmpeg).astype(np.int16)).mean()
    assert diff < NATIVE_TOLERANCE_LEVELS, diff
    assert fast.decodes().get("source#0 (h264)") == 1 and fast.encodes()["libx264"] == 1


def test_multiply_volume_as_a_filter_matches_moviepy(source: Path, tmp_path: Path) -> None:
    effect = {"name": "multiply_volume", "factor": 0.5, "start_time": 0.5}
    _, slow = _finish(source, tmp_path, "moviepy", [effect], engine="moviepy")
    _, fast = _finish(source, tmp_path, "ffmpeg", [effect])
    # the loudness gain that follows is the evidence: the same measured sound needs the same gain
    gains = [next(s for s in r.steps if s["step"] == "loudness")["gain_db"] for r in (slow, fast)]
    assert abs(gains[0] - gains[1]) < 0.1, gains


def test_a_caption_and_fades_still_apply_after_the_effects(source: Path, tmp_path: Path) -> None:
    out, result = _finish(source, tmp_path, "all", [{"name": "invert_colors"}, {"name": "rotate", "angle": 90}],
                          fade=0.25, caption="Dawn", engine="moviepy")  # fmt: skip
    luma = gray_frames(out).reshape(36, -1).mean(axis=1)
    assert luma[0] < 20 and luma[-1] < 20 and luma[18] > 40
    assert [s["effect"] for s in result.steps if s["step"] == "effect"] == ["invert_colors", "rotate"]
    assert result.has_caption
    _once(result)
