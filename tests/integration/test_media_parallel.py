"""Parallel finishing: renders running at once in one working store never collide on a temp file, all
succeed, leave their scratch clean, and leave no ffmpeg process behind (running or unreaped)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shotline.finishing import finish_clip
from shotline.hashing import sha256_file
from shotline.media.postprocess import FinishSpec, render_final
from shotline.media.probe import decode_check, probe
from shotline.store import WorkStore
from testkit.mediakit import ffmpeg_processes, make_clip, zombie_children


def test_parallel_renders_share_a_store_without_colliding(tmp_path: Path) -> None:
    a = make_clip(tmp_path / "a.mp4", size=(640, 360), duration=1.5)
    b = make_clip(tmp_path / "b.mp4", size=(640, 360), duration=1.5, video="mandelbrot")
    store = WorkStore(tmp_path / "home")
    specs = {
        "sb__s01": (a, FinishSpec(resolution="480p", caption="One", x264_preset="veryfast")),
        "sb__s02": (b, FinishSpec(format="portrait", resolution="480p", caption="Two", x264_preset="veryfast")),
    }

    def finish(label: str):
        src, spec = specs[label]
        return finish_clip(src, sha256_file(src), spec, store, label)

    # The same file names in every task (final.mp4, audio.wav, caption.png, thumb.jpg) in one scratch area;
    # the same partition twice too, as a retry racing its first attempt would.
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = list(pool.map(finish, ["sb__s01", "sb__s02", "sb__s01"]))
    assert [(d.render.width, d.render.height) for d in done] == [(854, 480), (480, 854), (854, 480)]
    assert done[0].sha256 == done[2].sha256  # same inputs, same deliverable
    for d in done:
        assert decode_check(d.path).video_frames == 36
    assert list((store.root / "scratch").iterdir()) == []
    assert ffmpeg_processes() == [] and zombie_children() == []


def test_parallel_renders_to_one_folder(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "src.mp4", size=(320, 240), duration=1.0)
    out = tmp_path / "out" / "final.mp4"

    def render(caption: str):
        spec = FinishSpec(resolution="480p", caption=caption, x264_preset="veryfast")
        return render_final(src, spec, out, tmp_path / "scratch")

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(render, ["first", "second"]))
    assert all(r.has_caption for r in results)
    assert probe(out).width == 854 and decode_check(out).video_frames == 24  # one whole file, never a mix
    assert [p.name for p in out.parent.iterdir()] == ["final.mp4"]  # no temp left beside it
    assert list((tmp_path / "scratch").iterdir()) == []
    assert ffmpeg_processes() == [] and zombie_children() == []
