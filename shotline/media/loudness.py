"""Two-pass EBU R128 normalisation: measure the finished audio, then apply one linear gain.

Pass 1 runs the audio graph of the render (trim, tempo, fades, music bed) once, writes the result to a
32-bit float WAV in the task's scratch folder and measures it with ffmpeg's `ebur128` meter (BS.1770:
integrated loudness, loudness range, true peak) in the same process. Pass 2, inside the render, reads that
WAV, so the source's audio is decoded once, and applies the gain that brings it to the target: a plain
`volume` whenever the gain keeps the true peak under the ceiling, otherwise the same gain followed by a
limiter running at 4x the sample rate (a true-peak approximation, as BS.1770 measures it) that catches the
few peaks. Level, not dynamics: nothing else touches the sound. The step record says which path was taken.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from pydantic import BaseModel

from shotline.errors import MediaError
from shotline.media.encoding import AUDIO_RATE
from shotline.media.ffmpeg import Arg, FfmpegRun, PathArg, run_ffmpeg, stderr_tail, summarize

# AAC encoding can push true peak up by a few tenths of a dB; the gain aims this far below the ceiling.
TRUE_PEAK_MARGIN_DB = 0.5
# Below this integrated loudness the audio is treated as silence and left alone (ebur128's floor is -70).
SILENCE_LUFS = -69.0
METER = "ebur128=peak=true:framelog=quiet"

_I_RE = re.compile(r"^\s*I:\s+(-?[\d.]+|-?inf|nan) LUFS", re.MULTILINE)
_LRA_RE = re.compile(r"^\s*LRA:\s+(-?[\d.]+|-?inf|nan) LU", re.MULTILINE)
_PEAK_RE = re.compile(r"^\s*Peak:\s+(-?[\d.]+|-?inf|nan) dBFS", re.MULTILINE)


class LoudnessTarget(BaseModel):
    integrated_lufs: float = -14.0
    true_peak_dbtp: float = -1.0

    @property
    def aim_tp(self) -> float:
        return self.true_peak_dbtp - TRUE_PEAK_MARGIN_DB


class Measurement(BaseModel):
    integrated_lufs: float
    true_peak_dbtp: float
    lra_lu: float = 0.0

    @property
    def silent(self) -> bool:
        return not math.isfinite(self.integrated_lufs) or self.integrated_lufs <= SILENCE_LUFS

    def within(self, target: LoudnessTarget, tolerance_lu: float) -> bool:
        """Already on target: integrated within `tolerance_lu`, true peak under the ceiling."""
        return (
            not self.silent
            and abs(self.integrated_lufs - target.integrated_lufs) <= tolerance_lu
            and self.true_peak_dbtp <= target.true_peak_dbtp
        )

    def describe(self) -> dict[str, float | None]:
        return {
            "integrated_lufs": _finite(self.integrated_lufs),
            "true_peak_dbtp": _finite(self.true_peak_dbtp),
            "lra_lu": _finite(self.lra_lu),
        }


def parse_ebur128(stderr: str, what: str = "audio") -> Measurement:
    """The summary the last `ebur128` meter printed in an ffmpeg stderr."""
    at = stderr.rfind("Summary:")
    summary = stderr[at:] if at >= 0 else ""
    i_match, p_match, lra_match = _I_RE.search(summary), _PEAK_RE.search(summary), _LRA_RE.search(summary)
    if not i_match or not p_match:
        raise MediaError(f"{what}: no loudness summary (no audio stream?)\n{stderr_tail(stderr)}")
    integrated = float(i_match.group(1))
    return Measurement(
        integrated_lufs=integrated if not math.isnan(integrated) else -math.inf,
        true_peak_dbtp=float(p_match.group(1)),
        lra_lu=float(lra_match.group(1)) if lra_match else 0.0,
    )


def measure_to_wav(
    input_args: Sequence[Arg], audio_graph: str, audio_label: str, wav: PathArg, *, what: str
) -> tuple[Measurement, FfmpegRun, list[Arg]]:
    """Pass 1: run `audio_graph` (a filter_complex whose output pad is `audio_label`), write it to `wav`
    (float, so nothing clips before the gain) and measure it. Returns the measurement, the run and its args."""
    graph = f"{audio_graph};[{audio_label}]asplit=2[pass1_keep][pass1_meter];[pass1_meter]{METER},anullsink"
    # fmt: off
    args: list[Arg] = [
        "-y", "-nostats", *input_args, "-filter_complex", graph,
        "-map", "[pass1_keep]", "-c:a", "pcm_f32le", "-f", "wav", wav,
    ]
    # fmt: on
    run = run_ffmpeg(args, what=what)
    return parse_ebur128(run.stderr, what), run, args


def gain_filter(target: LoudnessTarget, m: Measurement) -> tuple[str, dict[str, object]]:
    """Pass 2's filter chain (empty for silence) and the step record describing it."""
    step: dict[str, object] = {
        "step": "loudness",
        "method": "two-pass EBU R128 (ffmpeg ebur128): measure, then one linear gain",
        "target_lufs": target.integrated_lufs,
        "true_peak_ceiling_dbtp": target.true_peak_dbtp,
        "measured": m.describe(),
    }
    if m.silent:
        step["mode"] = "skipped (silent audio)"
        return "", step
    gain = target.integrated_lufs - m.integrated_lufs
    step["gain_db"] = round(gain, 2)
    if m.true_peak_dbtp + gain > target.aim_tp:
        limit = 10 ** (target.aim_tp / 20)
        chain = (
            f"volume={gain:.2f}dB,aresample={4 * AUDIO_RATE},"
            f"alimiter=limit={limit:.4f}:attack=5:release=50:level=disabled:latency=1,aresample={AUDIO_RATE}"
        )
        step["mode"] = "linear gain + true-peak limiter (the gain alone would exceed the ceiling)"
    else:
        chain = f"volume={gain:.2f}dB"
        step["mode"] = "linear gain"
    step["filter"] = chain
    return chain, step


def measure_file(path_arg: PathArg, *, stream: str = "0:a:0", what: str) -> tuple[Measurement, str]:
    """Measure one audio stream of a file as it is."""
    args: list[Arg] = ["-nostats", "-i", path_arg, "-map", stream, "-af", METER, "-f", "null", "-"]
    run = run_ffmpeg(args, what=what)
    return parse_ebur128(run.stderr, what), summarize(args)


def _finite(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None
