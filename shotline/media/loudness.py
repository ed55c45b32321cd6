"""Two-pass EBU R128 normalisation: measure the finished audio with loudnorm, then apply a linear gain.

Pass 1 runs the same audio graph as the render, ending in `loudnorm=print_format=json`, and reads what it
measured. Pass 2 (inside the render) passes those measurements back to loudnorm with `linear=true`, a
plain gain, whenever the gain keeps the true peak under the ceiling. When it would not (quiet, peaky
sound), loudnorm does not do what we want: ffmpeg 9 either switches to its dynamic mode (gain that moves
over time) or, for inputs under 3 s, lowers the gain and misses the target. So that case applies the same
linear gain with `volume` and catches the few peaks with a limiter running at 4x the sample rate (a
true-peak approximation, as BS.1770 measures it). The step record says which path was taken.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from pydantic import BaseModel

from shotline.errors import MediaError
from shotline.media.encoding import AUDIO_RATE
from shotline.media.ffmpeg import Arg, run_ffmpeg, stderr_tail, summarize

# AAC encoding can push true peak up by a few tenths of a dB; loudnorm aims this far below the ceiling.
TRUE_PEAK_MARGIN_DB = 0.5
DEFAULT_LRA = 11.0
# Below this integrated loudness the audio is treated as silence and left alone (ebur128's floor is -70).
SILENCE_LUFS = -69.0


class LoudnessTarget(BaseModel):
    integrated_lufs: float = -14.0
    true_peak_dbtp: float = -1.0

    @property
    def loudnorm_tp(self) -> float:
        return self.true_peak_dbtp - TRUE_PEAK_MARGIN_DB


class LoudnormMeasurement(BaseModel):
    input_i: float
    input_tp: float
    input_lra: float
    input_thresh: float
    target_offset: float

    @property
    def silent(self) -> bool:
        return not math.isfinite(self.input_i) or self.input_i <= SILENCE_LUFS


def parse_loudnorm_json(stderr: str) -> dict[str, str]:
    """The last JSON object loudnorm printed (print_format=json) in an ffmpeg stderr."""
    end = stderr.rfind("}")
    start = stderr.rfind("{", 0, end)
    if start < 0 or end < 0:
        raise MediaError(f"loudnorm printed no measurement\n{stderr_tail(stderr)}")
    try:
        return json.loads(stderr[start : end + 1])
    except json.JSONDecodeError as exc:
        raise MediaError(f"loudnorm printed unreadable JSON: {exc}") from exc


def _number(value: str) -> float:
    return float(value)  # float() reads "-inf" and "inf", which loudnorm prints for silence


def measure_graph(
    input_args: Sequence[Arg], audio_graph: str, audio_label: str, *, what: str
) -> tuple[LoudnormMeasurement, str]:
    """Pass 1: run `audio_graph` (a filter_complex whose output pad is `audio_label`) into loudnorm.

    Returns the measurement and the command summary.
    """
    graph = f"{audio_graph};[{audio_label}]loudnorm=print_format=json[loudness_probe]"
    # fmt: off
    args: list[Arg] = [
        "-nostats", *input_args, "-filter_complex", graph, "-map", "[loudness_probe]", "-f", "null", "-",
    ]
    # fmt: on
    run = run_ffmpeg(args, what=what)
    raw = parse_loudnorm_json(run.stderr)
    m = LoudnormMeasurement(
        input_i=_number(raw["input_i"]),
        input_tp=_number(raw["input_tp"]),
        input_lra=_number(raw["input_lra"]),
        input_thresh=_number(raw["input_thresh"]),
        target_offset=_number(raw["target_offset"]),
    )
    return m, summarize(args)


def normalize_filter(target: LoudnessTarget, m: LoudnormMeasurement) -> tuple[str, dict[str, object]]:
    """Pass 2's filter chain (empty for silence) and the step record describing it."""
    step: dict[str, object] = {
        "step": "loudness",
        "method": "two-pass EBU R128: loudnorm measures, then a linear gain",
        "target_lufs": target.integrated_lufs,
        "true_peak_ceiling_dbtp": target.true_peak_dbtp,
        "measured": {
            "integrated_lufs": _finite(m.input_i),
            "true_peak_dbtp": _finite(m.input_tp),
            "lra_lu": m.input_lra,
            "threshold_lufs": _finite(m.input_thresh),
        },
    }
    if m.silent:
        step["mode"] = "skipped (silent audio)"
        return "", step
    gain = target.integrated_lufs - m.input_i
    tp = target.loudnorm_tp
    step["gain_db"] = round(gain, 2)
    # loudnorm goes linear only if the measured LRA fits the LRA target, so the target is raised to the
    # measured LRA: the aim is level, not dynamics. It also reads measured_LRA=0 as "not measured" and
    # refuses linear mode, so a steady signal (LRA 0.0) is passed as 0.01.
    measured_lra = max(m.input_lra, 0.01)
    lra = min(max(DEFAULT_LRA, measured_lra), 50.0)
    if m.input_tp + gain > tp or measured_lra > lra:
        limit = 10 ** (tp / 20)
        chain = (
            f"volume={gain:.2f}dB,aresample={4 * AUDIO_RATE},"
            f"alimiter=limit={limit:.4f}:attack=5:release=50:level=disabled:latency=1,aresample={AUDIO_RATE}"
        )
        step["mode"] = "linear gain + true-peak limiter (the gain alone would exceed the ceiling)"
        step["filter"] = chain
        return chain, step
    step["mode"] = "linear (loudnorm)"
    chain = (
        f"loudnorm=I={target.integrated_lufs}:TP={tp}:LRA={lra}"
        f":measured_I={min(m.input_i, 0.0)}:measured_TP={m.input_tp}:measured_LRA={measured_lra}"
        f":measured_thresh={min(max(m.input_thresh, -99.0), 0.0)}:offset={m.target_offset}"
        f":linear=true:print_format=json,aresample={AUDIO_RATE}"
    )
    step["filter"] = chain
    return chain, step


def record_pass2(stderr: str, step: dict[str, object]) -> None:
    """Add what loudnorm reported in the render (its mode and output estimate) to the step record."""
    if step.get("mode") != "linear (loudnorm)":
        return
    raw = parse_loudnorm_json(stderr)
    step["loudnorm_reported"] = {
        "normalization_type": raw.get("normalization_type"),
        "output_i": _finite(_number(raw.get("output_i", "nan"))),
        "output_tp": _finite(_number(raw.get("output_tp", "nan"))),
    }


def _finite(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None
