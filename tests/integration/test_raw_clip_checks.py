"""What raw_clip holds a generated video to before it succeeds (shotline.generators.cache.check_clip/verify_clip):
decoded, duration within two frames of the request, the resolution's short side, the still's orientation,
an audio track, and what the generator and fal's output metadata claimed about the file. Real mp4 files,
decoded by ffmpeg."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shotline.errors import MediaError
from shotline.generators.base import GenerationRequest, GenerationResult
from shotline.generators.cache import verify_clip
from shotline.generators.clip_check import check_clip
from testkit.fakes.fal_server import FakeFal

FAL = "fal's output metadata"


@pytest.fixture(scope="module")
def media() -> Iterator[FakeFal]:
    """The fake server's mp4 renderer (no server started): real H.264/AAC files at 24 fps."""
    fake = FakeFal()
    yield fake
    fake.stop()


def request(*, duration: int = 2, resolution: str = "480p", image: tuple[int, int] = (640, 360)) -> GenerationRequest:
    return GenerationRequest(
        storyboard_id="harbor-teaser",
        shot_id="s01-boats",
        clip_key="k",
        prompt="p",
        image_path=Path("unused.png"),
        image_sha256="0" * 64,
        image_width=image[0],
        image_height=image[1],
        duration=duration,
        resolution=resolution,  # type: ignore[arg-type]
    )


def problems_of(path: Path, req: GenerationRequest, claims: dict[str, dict[str, Any]] | None = None) -> str:
    with pytest.raises(MediaError) as caught:
        check_clip(path, req, claims=claims)
    message = str(caught.value)
    assert message.startswith("storyboard 'harbor-teaser', shot 's01-boats': ")
    return message


def test_a_clip_as_fal_returns_it_passes_and_is_described(media: FakeFal) -> None:
    path = media.render_mp4(854, 480, 49)
    claims = {FAL: {"width": 854, "height": 480, "fps": 24, "duration": 2.041667, "num_frames": 49,
                    "content_type": "video/mp4", "file_size": path.stat().st_size}}  # fmt: skip
    facts = check_clip(path, request(), claims=claims)
    assert (facts.width, facts.height, facts.fps, facts.frames) == (854, 480, 24, 49)
    assert facts.duration_s == pytest.approx(2.041667) and facts.has_audio and facts.audio_codec == "aac"
    assert facts.size_bytes == path.stat().st_size and facts.video_codec == "h264"


@pytest.mark.parametrize(("frames", "ok"), [(47, True), (48, True), (50, True), (45, False), (51, False)])
def test_duration_must_be_within_two_frames_of_the_request(media: FakeFal, frames: int, ok: bool) -> None:
    path = media.render_mp4(854, 480, frames)
    if ok:
        assert check_clip(path, request()).frames == frames
    else:
        assert f"({frames} frames at 24 fps), asked for 2 s" in problems_of(path, request())


def test_the_short_side_must_be_the_resolution(media: FakeFal) -> None:
    path = media.render_mp4(854, 480, 49)
    assert "it is 854x480, not 720p (short side 720)" in problems_of(path, request(resolution="720p"))


def test_a_clip_turned_against_its_still_is_refused_but_a_near_square_still_may_go_either_way(
    media: FakeFal,
) -> None:
    portrait = media.render_mp4(480, 854, 49)
    assert "it is portrait (480x854) but the still is landscape" in problems_of(portrait, request())
    assert check_clip(portrait, request(image=(360, 640))).height == 854
    assert check_clip(portrait, request(image=(500, 520))).width == 480  # near-square: the model decides


def test_a_clip_without_audio_is_refused(media: FakeFal) -> None:
    silent = media.render_mp4(854, 480, 49, audio=False)
    assert problems_of(silent, request()).endswith("it has no audio track")


def test_every_problem_is_listed_at_once(media: FakeFal) -> None:
    silent = media.render_mp4(854, 480, 72, audio=False)
    message = problems_of(silent, request(resolution="720p"))
    assert "asked for 2 s" in message and "not 720p" in message and "no audio track" in message


@pytest.mark.parametrize(
    ("claim", "problem"),
    [
        ({"width": 1280, "height": 720}, "says 1280x720, the file is 854x480"),
        ({"width": 1280}, "says width 1280, the file is 854 wide"),
        ({"fps": 25}, "says 25 fps, the file has 24"),
        ({"duration": 2.5}, "says 2.500 s, the file's video lasts 2.042 s"),
        ({"num_frames": 47}, "says 47 frames, 49 decoded"),
        ({"content_type": "image/png"}, "says content type 'image/png', not a video"),
        ({"file_size": 1}, "says 1 bytes, the file has"),
    ],
)
def test_what_fal_said_about_the_file_is_cross_checked(media: FakeFal, claim: dict[str, Any], problem: str) -> None:
    path = media.render_mp4(854, 480, 49)
    assert f"{FAL} {problem}" in problems_of(path, request(), {FAL: claim})


def test_claims_within_tolerance_or_left_out_pass(media: FakeFal) -> None:
    path = media.render_mp4(854, 480, 49)
    fine = {"fps": 23.98, "duration": 2.05, "num_frames": 50, "width": None, "content_type": "video/mp4"}
    assert check_clip(path, request(), claims={FAL: fine}).frames == 49


def test_what_is_not_a_video_or_is_cut_short_is_refused(media: FakeFal, tmp_path: Path) -> None:
    html = tmp_path / "page.mp4"
    html.write_text("<html><body>Access denied</body></html>")
    assert "not a playable video" in problems_of(html, request())

    whole = media.render_mp4(854, 480, 49).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) // 2])  # moov first (faststart), half the media data missing
    assert "not a playable video" in problems_of(cut, request())


def test_verify_clip_holds_the_generators_own_numbers_to_the_file(media: FakeFal) -> None:
    path = media.render_mp4(854, 480, 49)
    result = GenerationResult(video_path=path, width=854, height=480, fps=24, duration_s=2.041667, generator="preview")
    assert verify_clip(result, request()).frames == 49
    lying = result.model_copy(update={"width": 640})
    with pytest.raises(MediaError, match="the preview generator says 640x480, the file is 854x480"):
        verify_clip(lying, request())
