"""probe / decode_check / faststart_ok / measure_loudness and the ffmpeg runner, on real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from shotline.errors import MediaError
from shotline.media.ffmpeg import PathArg, run_ffmpeg, summarize, task_tempdir
from shotline.media.probe import (
    decode_check,
    faststart_ok,
    measure_loudness,
    parse_ffmpeg_info,
    probe,
    top_level_boxes,
)
from testkit.mediakit import live_children, make_clip, zombie_children


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("probe")
    return {
        "plain": make_clip(d / "plain.mp4", size=(640, 360), duration=2.0),
        "tagged": make_clip(
            d / "tagged.mp4",
            size=(320, 240),
            duration=1.0,
            audio="mono",
            extra=[
                "-vf",
                "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709",
                "-profile:v",
                "baseline",
            ],
        ),
        "silent": make_clip(d / "silent.mp4", size=(320, 240), duration=1.0, audio=None),
        "tail_moov": make_clip(d / "tail_moov.mp4", size=(320, 240), duration=1.0, faststart=False),
        "tone": make_clip(d / "tone.mp4", size=(320, 240), duration=3.0, audio="tone"),
    }


def test_probe_reads_streams(clips: dict[str, Path]) -> None:
    info = probe(clips["plain"])
    assert (info.width, info.height) == (640, 360)
    assert info.fps == 24
    assert info.duration_s == pytest.approx(2.0, abs=0.05)
    assert info.video_codec == "h264" and info.pix_fmt == "yuv420p"
    assert info.profile  # ultrafast x264 signals "Constrained Baseline"
    assert info.has_audio and info.audio_codec == "aac" and info.audio_profile == "LC"
    assert info.audio_rate == 48000 and info.audio_channels == 2
    assert info.color_space is None  # untagged


def test_probe_reads_colour_tags_and_mono(clips: dict[str, Path]) -> None:
    info = probe(clips["tagged"])
    assert (info.color_range, info.color_space, info.color_primaries, info.color_transfer) == (
        "tv",
        "bt709",
        "bt709",
        "bt709",
    )
    assert info.audio_channels == 1 and info.audio_rate == 44100


def test_probe_without_audio(clips: dict[str, Path]) -> None:
    info = probe(clips["silent"])
    assert not info.has_audio and info.audio_codec is None


def test_probe_rejects_non_media(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(MediaError, match=r"junk\.mp4"):
        probe(junk)
    with pytest.raises(MediaError, match="no such file"):
        probe(tmp_path / "missing.mp4")


def test_parse_ffmpeg_info_details() -> None:
    text = """Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'x.mp4':
  Metadata:
    major_brand     : isom
    title           : Harbor
    comment         : first line
                    : second line
  Duration: 00:01:02.50, start: 0.000000, bitrate: 900 kb/s
  Chapters:
    Chapter #0:0: start 0.000000, end 4.750000
      Metadata:
        title           : Boats
    Chapter #0:1: start 4.750000, end 62.500000
      Metadata:
        title           : Gulls
  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709/bt709/unknown, progressive), 1920x1080 [SAR 1:1 DAR 16:9], 800 kb/s, 23.98 fps, 23.98 tbr, 24k tbn (default)
    Metadata:
      handler_name    : VideoHandler
    Side data:
      displaymatrix: rotation of -90.00 degrees
  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, 5.1, fltp, 256 kb/s (default)
  Stream #0:2[0x3](und): Video: mjpeg (Baseline), yuvj420p(pc), 300x300, 90k tbr, 90k tbn (attached pic)
"""  # noqa: E501
    info = parse_ffmpeg_info(text)
    assert info.duration_s == pytest.approx(62.5)
    assert (info.width, info.height, info.rotation, info.display_size) == (1920, 1080, 270, (1080, 1920))
    assert info.fps == pytest.approx(23.98)
    assert (info.color_space, info.color_primaries, info.color_transfer) == ("bt709", "bt709", None)
    assert info.audio_channels == 6 and info.audio_rate == 44100
    assert info.tags == {"title": "Harbor", "comment": "first line\nsecond line"}
    assert [(c.title, c.start_s, c.end_s) for c in info.chapters] == [
        ("Boats", 0, 4.75),
        ("Gulls", 4.75, 62.5),
    ]
    assert info.bitrate_kbps == 900


def test_decode_check_counts_frames(clips: dict[str, Path]) -> None:
    stats = decode_check(clips["plain"])
    assert stats.video_frames == 48
    assert stats.decoded_s == pytest.approx(2.0, abs=0.05)


def test_decode_check_rejects_truncated_file(clips: dict[str, Path], tmp_path: Path) -> None:
    data = clips["plain"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # moov is at the front, so half the media data is missing
    with pytest.raises(MediaError, match=r"cut\.mp4"):
        decode_check(cut)


def test_faststart(clips: dict[str, Path]) -> None:
    assert faststart_ok(clips["plain"])
    assert not faststart_ok(clips["tail_moov"])
    kinds = [k for k, _ in top_level_boxes(clips["tail_moov"])]
    assert kinds[0] == "ftyp" and kinds.index("mdat") < kinds.index("moov")


def test_measure_loudness_of_a_known_tone(clips: dict[str, Path]) -> None:
    # A 997 Hz sine at half scale (-6.02 dBFS) in both channels is -6.0 LUFS, true peak -6.0 dBTP.
    integrated, peak = measure_loudness(clips["tone"])
    assert integrated == pytest.approx(-6.0, abs=0.5)
    assert peak == pytest.approx(-6.0, abs=0.5)


def test_measure_loudness_needs_audio(clips: dict[str, Path]) -> None:
    with pytest.raises(MediaError):
        measure_loudness(clips["silent"])


def test_run_ffmpeg_failure_quotes_stderr_and_reaps() -> None:
    with pytest.raises(MediaError, match=r"(?s)widget test: ffmpeg failed.*nosuchfilter"):
        run_ffmpeg(["-f", "lavfi", "-i", "nosuchfilter", "-f", "null", "-"], what="widget test")
    assert zombie_children() == []


def test_run_ffmpeg_timeout_kills_and_reaps() -> None:
    before = set(live_children())
    with pytest.raises(MediaError, match="timed out"):
        run_ffmpeg(["-re", "-f", "lavfi", "-i", "anullsrc", "-f", "null", "-"], what="endless", timeout=0.5)
    assert set(live_children()) <= before
    assert zombie_children() == []


def test_summary_shows_labels_not_paths(tmp_path: Path) -> None:
    text = summarize(["-i", PathArg(tmp_path / "a b.mp4", "source"), "-vf", "scale=2:2", "out x"])
    assert text == "ffmpeg -i <source> -vf scale=2:2 'out x'"
    assert str(tmp_path) not in text


def test_task_tempdir_is_private_and_removed(tmp_path: Path) -> None:
    with task_tempdir(tmp_path, "job") as a, task_tempdir(tmp_path, "job") as b:
        assert a != b and a.parent == tmp_path
        (a / "f.txt").write_text("x")
    assert list(tmp_path.iterdir()) == []
