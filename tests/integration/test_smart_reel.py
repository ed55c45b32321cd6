"""Smart-rendered reels: clip bodies copied packet for packet, only the transitions encoded, one conformant stream."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from shotline.media.deliverable import Expected, check_deliverable
from shotline.media.encoding import FPS, Encoding, reel_keyframes
from shotline.media.ffmpeg import ffmpeg_exe
from shotline.media.keyframes import scan
from shotline.media.postprocess import FinishSpec, render_final
from shotline.media.probe import avc_config, decode_check, probe
from shotline.media.reel import planned_duration, render_reel
from shotline.media.smart_reel import Span, plan_pieces
from testkit.mediakit import gray_frames, make_clip

FAST = "veryfast"
SECONDS = 2.0
N = round(SECONDS * FPS)  # 48 frames a clip


def frame_md5s(path: Path) -> list[str]:
    """The MD5 of every decoded video frame, in display order."""
    out = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line and not line.startswith("#")]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def video_step(result) -> dict:
    return next(s for s in result.steps if s["step"] == "video")


def finish(raw: Path, out: Path, scratch: Path, transition_frames: int | None, preset: str = FAST) -> Path:
    spec = FinishSpec(
        resolution="480p", fade=0.5, trim=(0.0, SECONDS), x264_preset=preset, reel_transition_frames=transition_frames
    )
    render_final(raw, spec, out, scratch)
    return out


@pytest.fixture(scope="module")
def finals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Three 2 s shotline finals keyed for a 0.5 s crossfade reel, the same keyed for no reel, and sources."""
    d = tmp_path_factory.mktemp("smart-finals")
    raws = [
        make_clip(d / f"raw{i}.mp4", duration=2.5, video=v, audio=a)
        for i, (v, a) in enumerate([("testsrc2", "speech"), ("mandelbrot", "loud"), ("testsrc", "speech")])
    ]
    keyed = [finish(r, d / f"keyed{i}.mp4", d / "s", 12) for i, r in enumerate(raws)]
    plain = [finish(r, d / f"plain{i}.mp4", d / "s", None) for i, r in enumerate(raws)]
    return {"raw": raws, "keyed": keyed, "plain": plain}


def test_finals_have_idrs_where_the_reel_transitions_begin_and_end(finals: dict[str, list[Path]]) -> None:
    assert reel_keyframes(N, 12) == (12, 36)
    assert FinishSpec(trim=(0, 2), reel_transition_frames=12).encoding.keyframes == (12, 36)
    assert "-force_key_frames" not in FinishSpec(trim=(0, 2)).encoding.video_args()
    layout = scan(finals["keyed"][0])
    assert layout.cfr and layout.frame_count == N
    assert {12, 36} <= set(layout.cuts) and 0 in layout.cuts and N in layout.cuts
    assert set(layout.idr_frames) >= {0, 12, 36}
    # all finals and the reel's own encoder write one decoder configuration (SPS/PPS)
    assert len({avc_config(f) for f in finals["keyed"] + finals["plain"]}) == 1


def test_plan_copies_bodies_and_encodes_windows() -> None:
    cuts = [0, 12, 24, 36, 48]
    pieces = plan_pieces([48, 48, 48], 12, [cuts, cuts, cuts])
    assert [(p.kind, p.reel_start, p.frames) for p in pieces] == [
        ("copy", 0, 36), ("encode", 36, 12), ("copy", 48, 24), ("encode", 72, 12), ("copy", 84, 36),
    ]  # fmt: skip
    assert pieces[1].spans == [Span(clip=0, start=36, end=48), Span(clip=1, start=0, end=12)]
    # keyed for 12 frames, cut with 6: the windows reach back and forward to the nearest IDRs
    pieces = plan_pieces([48, 48, 48], 6, [cuts, cuts, cuts])
    assert [(p.kind, p.spans[0].start, p.frames) for p in pieces][:3] == [("copy", 0, 36), ("encode", 36, 18),
                                                                        ("copy", 12, 24)]  # fmt: skip
    # a clip that must not be copied is encoded inside the window around it
    pieces = plan_pieces([48, 48, 48], 12, [cuts, None, cuts])
    assert [p.kind for p in pieces] == ["copy", "encode", "copy"]
    assert [(s.clip, s.start, s.end) for s in pieces[1].spans] == [(0, 36, 48), (1, 0, 48), (2, 0, 12)]
    assert pieces[1].frames == 12 + 48 + 12 - 2 * 12
    # cut reels copy every clip whole
    pieces = plan_pieces([48, 30], 0, [cuts, [0, 30]])
    assert [(p.kind, p.reel_start, p.frames) for p in pieces] == [("copy", 0, 48), ("copy", 48, 30)]
    # the total always matches the reel's length
    for t, c in ((12, [cuts, None, None]), (6, [[0, 48], cuts, [0, 5, 48]]), (0, [None, cuts, [0, 7, 48]])):
        assert sum(p.frames for p in plan_pieces([48, 48, 48], t, c)) == 3 * 48 - 2 * t


def _expected(result, chapters: list[str]) -> Expected:
    return Expected(width=854, height=480, duration_s=result.duration_s, loudness_lufs=-14.0, chapters=chapters)


def test_crossfade_reel_copies_bodies_and_encodes_only_the_windows(
    finals: dict[str, list[Path]], tmp_path: Path
) -> None:
    clips = finals["keyed"]
    titles = ["boats", "gulls", "dusk"]
    smart = render_reel(clips, tmp_path / "smart.mp4", tmp_path / "s", chapters=titles, x264_preset=FAST)
    full = render_reel(clips, tmp_path / "full.mp4", tmp_path / "s", chapters=titles, x264_preset=FAST, smart=False)
    assert smart.video_path == "smart" and full.video_path == "full"
    step = video_step(smart)
    assert step["copied_frames"] == 3 * N - 4 * 12 and step["encoded_frames"] == 2 * 12
    assert [c["copied"] for c in step["clips"]] == [[0, 36], [12, 36], [12, 48]]

    total = 3 * N - 2 * 12
    assert smart.duration_s == full.duration_s == planned_duration([SECONDS] * 3, "crossfade", 0.5) == total / FPS
    assert decode_check(tmp_path / "smart.mp4").video_frames == decode_check(tmp_path / "full.mp4").video_frames
    assert probe(tmp_path / "smart.mp4").duration_s == pytest.approx(total / FPS, abs=1e-3)

    # Every body frame is the final's own, decoded bit for bit.
    reel = frame_md5s(tmp_path / "smart.mp4")
    assert len(reel) == total
    src = [frame_md5s(c) for c in clips]
    assert reel[0:36] == src[0][0:36]
    assert reel[48:72] == src[1][12:36]
    assert reel[84:120] == src[2][12:48]
    # The dissolves are where the chapters say (a chapter starts mid-dissolve), and look like the full render's.
    assert [(c.title, c.start_s, c.end_s) for c in smart.chapters] == [
        (c.title, c.start_s, c.end_s) for c in full.chapters
    ]
    windows = [p for p in step["pieces"] if p["piece"] == "encode"]
    assert [(w["reel_frames"][0] + w["reel_frames"][1]) / 2 / FPS for w in windows] == [
        c.start_s for c in smart.chapters[1:]
    ]
    a, b = gray_frames(tmp_path / "smart.mp4"), gray_frames(tmp_path / "full.mp4")
    for w in windows:
        for f in range(*w["reel_frames"]):
            assert psnr(a[f], b[f]) > 35, f
    # Conformant: the same deliverable checks as the asset's, chapters included.
    outcomes = check_deliverable(tmp_path / "smart.mp4", _expected(smart, titles))
    assert [o.name for o in outcomes if not o.passed] == []
    layout = scan(tmp_path / "smart.mp4")
    assert layout.cfr and avc_config(tmp_path / "smart.mp4") == avc_config(clips[0])
    # Lineage: what was copied and what was encoded, run by run.
    copies = [p for p in smart.passes if p["pass"].startswith("reel copy")]
    encodes = [p for p in smart.passes if p["pass"].startswith("reel encode")]
    assert len(copies) == 3 and all(p["copied"] and not p["encoded"] for p in copies)
    assert len(encodes) == 2 and all(p["encoded"] == ["libx264"] for p in encodes)
    join = next(p for p in smart.passes if p["pass"] == "join")
    assert join["encoded"] == ["aac"] and join["copied"]


def test_finals_keyed_for_another_transition_still_make_a_correct_reel(
    finals: dict[str, list[Path]], tmp_path: Path
) -> None:
    clips = finals["keyed"]  # IDRs at 12 and 36, the reel's crossfade is 0.25 s (6 frames)
    smart = render_reel(clips, tmp_path / "smart.mp4", tmp_path / "s", transition_seconds=0.25, x264_preset=FAST)
    full = render_reel(
        clips, tmp_path / "full.mp4", tmp_path / "s", transition_seconds=0.25, x264_preset=FAST, smart=False
    )
    step = video_step(smart)
    assert step["path"] == "smart"
    total = 3 * N - 2 * 6
    assert decode_check(tmp_path / "smart.mp4").video_frames == total == round(full.duration_s * FPS)
    # the windows grew to the nearest IDRs: 6 frames of each side re-encoded plain, around each 6-frame dissolve
    assert [p["reel_frames"] for p in step["pieces"] if p["piece"] == "encode"] == [[36, 54], [78, 96]]
    reel, src = frame_md5s(tmp_path / "smart.mp4"), [frame_md5s(c) for c in clips]
    assert reel[0:36] == src[0][0:36] and reel[54:78] == src[1][12:36] and reel[96:132] == src[2][12:48]
    a, b = gray_frames(tmp_path / "smart.mp4"), gray_frames(tmp_path / "full.mp4")
    assert min(psnr(a[f], b[f]) for f in range(36, 54)) > 35
    assert [o.name for o in check_deliverable(tmp_path / "smart.mp4", _expected(smart, None)) if not o.passed] == []


def test_clips_of_another_encoding_are_encoded_in_the_window_around_them(
    finals: dict[str, list[Path]], tmp_path: Path
) -> None:
    other_preset = finish(finals["raw"][1], tmp_path / "faster.mp4", tmp_path / "s", 12, preset="faster")
    assert avc_config(other_preset) != avc_config(finals["keyed"][0])  # x264 writes other SPS (reference frames)
    not_shotline = make_clip(tmp_path / "ultrafast.mp4", duration=SECONDS)  # Constrained Baseline, no BT.709 tags
    clips = [finals["keyed"][0], other_preset, finals["keyed"][2], not_shotline]
    smart = render_reel(clips, tmp_path / "smart.mp4", tmp_path / "s", x264_preset=FAST)
    full = render_reel(clips, tmp_path / "full.mp4", tmp_path / "s", x264_preset=FAST, smart=False)
    step = video_step(smart)
    assert step["path"] == "smart"
    by_clip = {c["clip"]: c for c in step["clips"]}
    assert by_clip[2]["copied"] is None and "decoder configuration" in by_clip[2]["reasons"][0]
    assert by_clip[4]["copied"] is None and any("High" in r for r in by_clip[4]["reasons"])
    assert by_clip[1]["copied"] == [0, 36] and by_clip[3]["copied"] == [12, 36]
    total = 4 * N - 3 * 12
    assert decode_check(tmp_path / "smart.mp4").video_frames == total == round(full.duration_s * FPS)
    a, b = gray_frames(tmp_path / "smart.mp4"), gray_frames(tmp_path / "full.mp4")
    assert min(psnr(a[f], b[f]) for f in range(total)) > 33
    assert [o.name for o in check_deliverable(tmp_path / "smart.mp4", _expected(smart, None)) if not o.passed] == []


def test_cut_reel_is_a_pure_video_copy(finals: dict[str, list[Path]], tmp_path: Path) -> None:
    clips = finals["plain"]
    smart = render_reel(clips, tmp_path / "cut.mp4", tmp_path / "s", transition="cut", x264_preset=FAST)
    step = video_step(smart)
    assert step["path"] == "smart" and step["encoded_frames"] == 0 and step["copied_frames"] == 3 * N
    assert not any("libx264" in p["encoded"] for p in smart.passes)
    # the reel's video packets are the finals' packets, in order, byte for byte
    reel = scan(tmp_path / "cut.mp4")
    assert [p.crc for p in reel.packets] == [p.crc for c in clips for p in scan(c).packets]
    assert reel.cfr and reel.frame_count == 3 * N
    assert [c.start_s for c in probe(tmp_path / "cut.mp4").chapters] == [0.0, 2.0, 4.0]
    outcomes = check_deliverable(tmp_path / "cut.mp4", _expected(smart, ["Shot 1", "Shot 2", "Shot 3"]))
    assert [o.name for o in outcomes if not o.passed] == []


def test_reel_of_clips_that_cannot_be_copied_is_rendered_whole(finals: dict[str, list[Path]], tmp_path: Path) -> None:
    result = render_reel(finals["raw"][:2], tmp_path / "r.mp4", tmp_path / "s", x264_preset=FAST)
    step = video_step(result)
    assert result.video_path == "full" and step["smart_refused"][0].startswith("no clip can be copied")
    encodes = [e for p in result.passes for e in p["encoded"]]
    assert encodes.count("libx264") == 1


def test_encoding_keyframes_are_validated() -> None:
    assert Encoding(keyframes=(36, 12, 12)).keyframes == (12, 36)
    with pytest.raises(ValueError):
        Encoding(keyframes=(0,))


def test_finish_spec_for_a_storyboard_places_the_reels_keyframes(tmp_path: Path) -> None:
    from shotline.finishing import finish_spec_for
    from shotline.storyboard import ReelSpec, load_storyboard
    from testkit.storyboard_factory import tiny_storyboard

    storyboard = load_storyboard(tiny_storyboard(tmp_path, n_shots=2, duration=2))  # 0.3 s crossfade: 7 frames
    shot = storyboard.shots[0]
    spec = finish_spec_for(storyboard, shot, generator="preview", model=None, request_id=None)
    assert spec.reel_transition_frames == 7 and spec.encoding.keyframes == (7, 41)
    assert "expr:eq(n,7)+eq(n,41)" in spec.encoding.video_args()
    cut = storyboard.model_copy(update={"reel": ReelSpec(transition="cut")})
    spec = finish_spec_for(cut, shot, generator="preview", model=None, request_id=None)
    assert spec.reel_transition_frames is None and spec.encoding.keyframes == ()
