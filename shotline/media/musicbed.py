"""A music bed under the clip's own sound: looped or cut to the clip's length, faded, and set a given
number of LU below the clip's audio by measuring both (so the bed sits where asked whatever the levels of
the two files). The mix is then normalised as a whole like any other soundtrack."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from shotline.media.encoding import AUDIO_RATE
from shotline.media.ffmpeg import Arg, PathArg
from shotline.media.loudness import Measurement


class MusicSpec(BaseModel):
    """An audio file (or a video file's first audio stream) to play under the clip."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    level_db: float = Field(-12.0, ge=-40, le=6)  # the bed's loudness relative to the clip's audio, in LU
    loop: bool = True  # repeat a bed shorter than the clip; otherwise it ends where it ends
    fade: float | None = Field(None, ge=0, le=10)  # bed fade in and out; None = the clip's fade


def bed_inputs(spec: MusicSpec) -> list[Arg]:
    loop = ["-stream_loop", "-1"] if spec.loop else []
    return [*loop, "-i", PathArg(spec.path, spec.path.name)]


def bed_graph(duration_s: float, fade_s: float) -> str:
    """Input 0's first audio stream -> [bed]: 48 kHz stereo, exactly `duration_s` long, faded."""
    d = duration_s
    chain = (
        f"[0:a:0]asetpts=PTS-STARTPTS,aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
        f"atrim=end={d},apad=whole_dur={d},atrim=end={d}"
    )
    if fade_s > 0:
        chain += f",afade=t=in:st=0:d={fade_s},afade=t=out:st={max(0.0, d - fade_s)}:d={fade_s}"
    return chain + "[bed]"


def bed_gain_db(spec: MusicSpec, clip: Measurement | None, bed: Measurement, target_lufs: float) -> float:
    """The gain that puts the bed `level_db` under the clip's audio (under the target if the clip is silent)."""
    if bed.silent:
        return 0.0
    reference = clip.integrated_lufs if clip is not None and not clip.silent else target_lufs
    return reference + spec.level_db - bed.integrated_lufs


def mix_graph(gain_db: float, with_clip: bool) -> str:
    """Inputs: 0 = the clip's audio WAV (when `with_clip`), then the bed WAV -> [mix]."""
    if not with_clip:
        return f"[0:a]volume={gain_db:.2f}dB[mix]"
    return f"[1:a]volume={gain_db:.2f}dB[bedg];[0:a][bedg]amix=inputs=2:duration=first:normalize=0[mix]"
