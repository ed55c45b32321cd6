"""The finished clip's sound: the source's audio (or the WAV of it moviepy's effects wrote) conformed, trimmed,
re-timed and faded, a music bed mixed under it if asked, measured, and the one gain that brings it to the
target loudness.

Every audio pass ends in a float WAV in the task's scratch folder, so the render reads finished PCM and
the source's audio is decoded once. See `loudness.py` for the measurement and the gain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shotline.hashing import sha256_file
from shotline.media import musicbed
from shotline.media.encoding import AAC_PRIMING_COMPENSATION, AUDIO_RATE
from shotline.media.ffmpeg import Arg, PathArg, stream_report, summarize
from shotline.media.loudness import LoudnessTarget, Measurement, gain_filter, measure_to_wav
from shotline.media.probe import VideoInfo
from shotline.media.timing import Timing


class Soundtrack(BaseModel):
    wav: Path | None  # the mixed, faded, not yet normalised audio; None for silence
    gain_chain: str  # the normalisation filter for the render ("" for none)
    duration_s: float
    steps: list[dict[str, Any]]
    passes: list[dict[str, Any]]
    commands: list[str]

    def render_graph(self, wav_input: int | None) -> str:
        """The render's audio graph, output pad [aout]; `wav_input` is the index of the WAV input."""
        if self.wav is None or wav_input is None:
            return f"anullsrc=r={AUDIO_RATE}:cl=stereo,atrim=end={self.duration_s},{AAC_PRIMING_COMPENSATION}[aout]"
        gain = f"{self.gain_chain}," if self.gain_chain else ""
        return f"[{wav_input}:a]{gain}{AAC_PRIMING_COMPENSATION}[aout]"


def tempo_filters(speed: float) -> str:
    """atempo takes 0.5..100 per instance; slower than half speed needs a chain."""
    parts = []
    while speed < 0.5:
        parts.append("atempo=0.5")
        speed /= 0.5
    if speed != 1:
        parts.append(f"atempo={speed:.6g}")
    return ",".join(parts)


def source_audio_graph(timing: Timing, effects_af: str = "") -> str:
    """Input 0's first audio stream -> [aud]: 48 kHz stereo, trimmed, sound effects run as ffmpeg filters
    (`effects_af`, see effects_render.py), re-timed, exactly the output's length."""
    d = timing.duration_s
    chain = (
        f"[0:a:0]asetpts=PTS-STARTPTS,aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
        f"atrim=start={timing.start_s}:end={timing.start_s + timing.source_s},asetpts=PTS-STARTPTS"
    )
    if effects_af:
        chain += f",{effects_af}"
    if tempo := tempo_filters(timing.speed):
        chain += f",{tempo}"
    chain += f",apad=whole_dur={d},atrim=end={d}"
    if timing.fade_frames:
        f = timing.fade_s
        chain += f",afade=t=in:st=0:d={f},afade=t=out:st={d - f}:d={f}"
    return chain + "[aud]"


def prepare_soundtrack(
    src: Path,
    info: VideoInfo,
    timing: Timing,
    target: LoudnessTarget,
    music: musicbed.MusicSpec | None,
    tmp: Path,
    *,
    effects_af: str = "",
    label: str = "source",
) -> Soundtrack:
    """Run the audio passes into `tmp`; the result says what the render does with them.

    `src` may be the WAV moviepy wrote with the shot's sound effects applied (then `timing` starts at 0)."""
    steps: list[dict[str, Any]] = []
    passes: list[dict[str, Any]] = []
    commands: list[str] = []

    def run_pass(name: str, inputs: list[Arg], graph: str, label: str, wav: Path, what: str) -> Measurement:
        m, run, args = measure_to_wav(inputs, graph, label, PathArg(wav, wav.name), what=what)
        passes.append({"pass": name, **stream_report(args, run.stderr)})
        commands.append(summarize(args))
        return m

    d = timing.duration_s
    clip_m: Measurement | None = None
    wav: Path | None = None
    if info.has_audio:
        source = {"codec": info.audio_codec, "rate": info.audio_rate, "channels": info.audio_channels}
        steps.append({"step": "audio_conform", "sample_rate": AUDIO_RATE, "channels": 2, "source": source})
        if timing.fade_frames:
            steps.append({"step": "audio_fade", "in_s": timing.fade_s, "out_s": timing.fade_s})
        wav = tmp / "audio.wav"
        clip_m = run_pass("audio", ["-i", PathArg(src, label)], source_audio_graph(timing, effects_af), "aud", wav,
                          f"audio pass of {src.name}")  # fmt: skip
    else:
        steps.append({"step": "silent_audio", "reason": "source has no audio stream", "sample_rate": AUDIO_RATE,
                      "channels": 2})  # fmt: skip
    final_m = clip_m
    if music is not None:
        fade = timing.fade_s if music.fade is None else min(music.fade, d / 2)
        bed_wav, mix_wav = tmp / "bed.wav", tmp / "mix.wav"
        bed_m = run_pass("music bed", musicbed.bed_inputs(music), musicbed.bed_graph(d, fade), "bed", bed_wav,
                         f"music bed {music.path.name}")  # fmt: skip
        gain = musicbed.bed_gain_db(music, clip_m, bed_m, target.integrated_lufs)
        inputs: list[Arg] = ["-i", PathArg(wav, wav.name)] if wav is not None else []
        inputs += ["-i", PathArg(bed_wav, bed_wav.name)]
        final_m = run_pass("mix", inputs, musicbed.mix_graph(gain, wav is not None), "mix", mix_wav, "music mix")
        steps.append(
            {
                "step": "music_bed",
                "file": music.path.name,
                "sha256": sha256_file(music.path),
                "loop": music.loop,
                "fade_s": fade,
                "level_db": music.level_db,
                "relative_to": "clip audio" if clip_m is not None and not clip_m.silent else "target loudness",
                "bed_measured": bed_m.describe(),
                "bed_gain_db": round(gain, 2),
            }
        )
        wav = mix_wav
    if final_m is None:
        gain_chain = ""
        steps.append({"step": "loudness", "mode": "skipped (silent track)", "target_lufs": target.integrated_lufs})
    else:
        gain_chain, loud_step = gain_filter(target, final_m)
        steps.append(loud_step)
    return Soundtrack(wav=wav, gain_chain=gain_chain, duration_s=d, steps=steps, passes=passes, commands=commands)
