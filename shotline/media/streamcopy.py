"""When finishing needs no pixel change: which streams can be copied as they are, and how.

A source already in the deliverable's frame and encoding (H.264 High 4:2:0 at 24 fps, BT.709 or untagged),
with nothing asked of the picture (no trim, fade, caption, speed change or logo), keeps its video packets
byte for byte; untagged colour is tagged BT.709 in the stream headers by the `h264_metadata` bitstream
filter, which leaves the coded pictures alone. Its audio is copied too when it is AAC-LC 48 kHz stereo,
no music bed is asked for and its loudness is already on target; otherwise only the audio is encoded.
"""

from __future__ import annotations

from shotline.media.encoding import AUDIO_RATE, FPS
from shotline.media.finish_spec import FinishSpec
from shotline.media.probe import VideoInfo

# Loudness a copied soundtrack may be off by: a margin inside DELIVERABLE_LOUDNESS_TOLERANCE_LU (1 LU).
LOUDNESS_TOLERANCE_LU = 0.5
BT709_BSF = "h264_metadata=colour_primaries=1:transfer_characteristics=1:matrix_coefficients=1:video_full_range_flag=0"


def video_copy_blockers(info: VideoInfo, spec: FinishSpec) -> list[str]:
    """Why the picture must be re-encoded (empty: the video stream can be copied)."""
    reasons = spec.picture_changes()
    if spec.trim is not None:
        start, end = spec.trim
        # A trim that keeps the whole clip, give or take its last frame, needs no cut.
        if start > 0.5 / FPS or end < info.duration_s - 1.5 / FPS:
            reasons.append("trim")
    if info.display_size != spec.frame or info.rotation:
        reasons.append(f"frame {info.display_size[0]}x{info.display_size[1]} is not {spec.frame[0]}x{spec.frame[1]}")
    if info.sar not in (None, "1:1"):
        reasons.append(f"pixel aspect {info.sar}")
    if info.video_codec != "h264" or info.profile != "High":
        reasons.append(f"codec {info.video_codec} ({info.profile}) is not h264 High")
    if info.pix_fmt != "yuv420p":
        reasons.append(f"pixel format {info.pix_fmt}")
    if abs(info.fps - FPS) > 0.01:
        reasons.append(f"{info.fps:g} fps")
    colour = (info.color_space, info.color_primaries, info.color_transfer)
    if any(c not in (None, "bt709") for c in colour) or info.color_range not in (None, "tv"):
        reasons.append("colour is not BT.709 limited range")
    return reasons


def audio_copy_blockers(info: VideoInfo, spec: FinishSpec) -> list[str]:
    """Why the sound must be encoded, before its loudness is known (empty: it may be copied)."""
    if not info.has_audio:
        return ["no audio stream (a silent track is added)"]
    reasons = []
    if spec.music is not None:
        reasons.append("music bed")
    if info.audio_codec != "aac" or info.audio_profile != "LC":
        reasons.append(f"audio codec {info.audio_codec} ({info.audio_profile})")
    if info.audio_rate != AUDIO_RATE or info.audio_channels != 2:
        reasons.append(f"audio {info.audio_rate} Hz, {info.audio_channels} channels")
    return reasons


def colour_tag_args(info: VideoInfo) -> list[str]:
    """Tag untagged colour as BT.709 without touching the pictures."""
    colour = (info.color_space, info.color_primaries, info.color_transfer, info.color_range)
    return ["-bsf:v", BT709_BSF] if any(c is None for c in colour) else []
