"""The deliverable encoding shared by finished clips and reels, and the metadata tags that go with it.

H.264 High 4:2:0 BT.709 at 24 fps CFR, AAC-LC 48 kHz stereo, MP4 with moov first and no edit lists. The x264 preset
defaults to `medium`: a clip is rendered once and then published and downloaded many times, and medium
gives files about 4x smaller than ultrafast at the same CRF for about 3 s per 6 s of 720p on 2 cores
(measured); tests and previews may pass a faster one. `ultrafast` is not offered because it
turns off the 8x8 transform, which makes x264 signal Main instead of High.

No edit lists (YouTube's upload spec asks for none): B-frames are timed with negative composition offsets
instead of a video edit, and the AAC encoder's priming (1024 samples a decoder emits before the first real
sample, normally hidden by an audio edit) is compensated by dropping the first 1024 samples of the audio
before encoding, so sound and picture stay in sync to the sample in players that ignore edit lists and in
those that honour them alike.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

X264Preset = Literal["superfast", "veryfast", "faster", "fast", "medium", "slow"]

FPS = 24
AUDIO_RATE = 48000
# What ffmpeg's AAC encoder puts before the first sample (its priming); see the module docstring.
AAC_PRIMING_SAMPLES = 1024
AAC_PRIMING_COMPENSATION = f"atrim=start_sample={AAC_PRIMING_SAMPLES},asetpts=PTS-STARTPTS"

# Frame properties for BT.709 limited range; the encoder writes them into the H.264 VUI from the frames.
BT709_TAGS = "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"

# Tags the MP4 muxer stores as iTunes atoms; any other key needs `use_metadata_tags` (mdta keys).
STANDARD_MP4_TAGS = frozenset(
    {
        "title",
        "artist",
        "album_artist",
        "album",
        "composer",
        "date",
        "comment",
        "genre",
        "copyright",
        "grouping",
        "description",
        "synopsis",
        "show",
        "episode_id",
        "network",
        "keywords",
    }
)


class Encoding(BaseModel):
    """Encoder settings of a deliverable; `describe()` is what lineage records."""

    model_config = ConfigDict(frozen=True)

    preset: X264Preset = "medium"
    crf: int = Field(20, ge=0, le=51)
    # YouTube's upload recommendation: closed GOP of half the frame rate, 2 consecutive B-frames.
    gop: int = FPS // 2
    bframes: int = 2
    audio_bitrate_kbps: int = 192
    threads: int | None = Field(None, ge=1, le=64)  # encoder threads; None = ffmpeg's own choice
    # Output frame indices that must start a closed GOP (an IDR), besides frame 0 and x264's own: where a reel's
    # transitions into and out of this clip begin and end, so the reel can copy the clip's body (smart_reel.py).
    keyframes: tuple[int, ...] = ()

    @field_validator("keyframes")
    @classmethod
    def _sorted_positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(k < 1 for k in v):
            raise ValueError("keyframes are output frame indices >= 1 (frame 0 is always one)")
        return tuple(sorted(set(v)))

    def keyframe_args(self) -> list[str]:
        if not self.keyframes:
            return []
        return ["-force_key_frames", "expr:" + "+".join(f"eq(n,{k})" for k in self.keyframes)]

    def video_args(self) -> list[str]:
        # fmt: off
        args = [
            "-c:v", "libx264", "-profile:v", "high", "-preset", self.preset, "-crf", str(self.crf),
            "-pix_fmt", "yuv420p", "-g", str(self.gop), "-bf", str(self.bframes), "-flags", "+cgop",
            "-fps_mode", "cfr", "-r", str(FPS),
            "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
        ]
        # fmt: on
        args += self.keyframe_args()
        if self.threads is not None:
            args += ["-threads", str(self.threads)]
        return args

    def audio_args(self) -> list[str]:
        # fmt: off
        return [
            "-c:a", "aac", "-profile:a", "aac_low", "-b:a", f"{self.audio_bitrate_kbps}k",
            "-ar", str(AUDIO_RATE), "-ac", "2",
        ]
        # fmt: on

    def describe(self) -> dict[str, object]:
        return {
            "container": "mp4",
            "movflags": "+faststart+negative_cts_offsets",
            "edit_lists": False,
            "threads": self.threads or "auto",
            "video": {
                "codec": "h264 (libx264)",
                "profile": "high",
                "preset": self.preset,
                "crf": self.crf,
                "pix_fmt": "yuv420p",
                "fps": FPS,
                "rate_control": "crf",
                "gop": self.gop,
                "closed_gop": True,
                "bframes": self.bframes,
                **({"forced_keyframes": list(self.keyframes)} if self.keyframes else {}),
                "colour": "bt709/bt709/bt709 limited range",
            },
            "audio": {
                "codec": "aac",
                "profile": "LC",
                "bitrate_kbps": self.audio_bitrate_kbps,
                "sample_rate": AUDIO_RATE,
                "channels": 2,
            },
        }


def reel_keyframes(frames: int, transition_frames: int | None) -> tuple[int, ...]:
    """Where a clip of `frames` frames needs IDRs for a reel to copy it between transitions of
    `transition_frames`: where the incoming transition ends and where the outgoing one starts."""
    if not transition_frames:
        return ()
    return tuple(sorted({k for k in (transition_frames, frames - transition_frames) if 0 < k < frames}))


def metadata_args(tags: dict[str, str]) -> list[str]:
    """The MP4 muxer's options: `-metadata k=v` for each tag, moov first, no edit lists.

    Custom keys need `use_metadata_tags` (stored as mdta keys); standard ones are iTunes atoms.
    """
    args: list[str] = []
    for key, value in tags.items():
        args += ["-metadata", f"{key}={value}"]
    flags = "+faststart+negative_cts_offsets"
    if any(key not in STANDARD_MP4_TAGS for key in tags):
        flags += "+use_metadata_tags"
    return [*args, "-movflags", flags, "-use_editlist", "0"]


def validate_tag_key(key: str) -> str:
    if not key or "=" in key or any(c.isspace() for c in key):
        raise ValueError(f"metadata tag key {key!r} must be non-empty, without '=' or spaces")
    return key
