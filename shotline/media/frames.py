"""Deliverable frame sizes and how a source picture is fitted into one (cover = crop, contain = letterbox).

480p landscape is 854x480: 480 * 16/9 = 853.3, rounded up to the next even width, the same frame the
generators return (`generators.base.output_frame`), so a 480p landscape clip is never rescaled.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Literal

from pydantic import BaseModel

Format = Literal["landscape", "portrait", "square"]
Fit = Literal["cover", "contain"]
Resolution = Literal["480p", "720p"]

_SHORT_SIDE = {"480p": 480, "720p": 720}


def even(value: float) -> int:
    """Nearest even integer, at least 2 (4:2:0 needs even dimensions)."""
    return max(2, round(value / 2) * 2)


def frame_size(fmt: Format, resolution: Resolution) -> tuple[int, int]:
    short = _SHORT_SIDE[resolution]
    long = (short * 16 // 9 + 1) // 2 * 2
    return {"landscape": (long, short), "portrait": (short, long), "square": (short, short)}[fmt]


class FitPlan(BaseModel):
    """Scale to `scaled`, then crop (cover) or pad (contain) to `frame`, centred."""

    fit: Fit
    source: tuple[int, int]
    frame: tuple[int, int]
    scaled: tuple[int, int]
    offset: tuple[int, int]  # crop origin in the scaled picture, or pad origin in the frame

    def filters(self) -> str:
        (w, h), (sw, sh), (x, y) = self.frame, self.scaled, self.offset
        chain = f"scale={sw}:{sh}:flags=lanczos:out_range=tv,setsar=1"
        if self.fit == "cover" and (sw, sh) != (w, h):
            chain += f",crop={w}:{h}:{x}:{y}"
        elif self.fit == "contain" and (sw, sh) != (w, h):
            chain += f",pad={w}:{h}:{x}:{y}:color=black"
        return chain

    def describe(self) -> dict[str, object]:
        d: dict[str, object] = {
            "step": "fit",
            "fit": self.fit,
            "source": list(self.source),
            "frame": list(self.frame),
            "scale_to": list(self.scaled),
            "scaler": "lanczos",
        }
        if self.scaled != self.frame:
            d["crop" if self.fit == "cover" else "letterbox"] = {"x": self.offset[0], "y": self.offset[1]}
        return d


def plan_fit(width: int, height: int, frame: tuple[int, int], fit: Fit, sar: str | None = None) -> FitPlan:
    """Plan the fit of a `width`x`height` picture (pixel aspect `sar`, e.g. "1:1") into `frame`."""
    w, h = frame
    par = Fraction(*map(int, sar.split(":"))) if sar and sar != "0:1" else Fraction(1)
    display_w = width * par
    if fit == "cover":
        scale = max(Fraction(w) / display_w, Fraction(h, height))
        sw, sh = max(w, even(display_w * scale)), max(h, even(height * scale))
        offset = ((sw - w) // 4 * 2, (sh - h) // 4 * 2)
    else:
        scale = min(Fraction(w) / display_w, Fraction(h, height))
        sw, sh = min(w, even(display_w * scale)), min(h, even(height * scale))
        offset = ((w - sw) // 4 * 2, (h - sh) // 4 * 2)  # even, so chroma lines up
    return FitPlan(fit=fit, source=(width, height), frame=frame, scaled=(sw, sh), offset=offset)
