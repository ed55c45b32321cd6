"""Deliverable frame sizes and how a source picture is fitted into one (cover = crop, contain = letterbox).

`contain` fills the bars with a plain colour, or with `blur`: the same picture scaled to cover the frame,
blurred and dimmed behind the sharp one. The blur is computed on a frame one eighth the size and scaled
up, which costs about as much as the plain pad.

480p landscape is 854x480: 480 * 16/9 = 853.3, rounded up to the next even width, the same frame the
generators return (`generators.base.output_frame`), so a 480p landscape clip is never rescaled.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Annotated, Literal

from pydantic import BaseModel, Field

Format = Literal["landscape", "portrait", "square"]
Fit = Literal["cover", "contain"]
Resolution = Literal["480p", "720p"]
# What fills the bars of a `contain` fit: a plain colour (a name or #rrggbb) or the blurred picture.
Fill = Annotated[str, Field(pattern=r"^(blur|black|white|gray|grey|#[0-9a-fA-F]{6})$")]

_NAMED_COLOURS = {"black": "0x000000", "white": "0xFFFFFF", "gray": "0x808080", "grey": "0x808080"}
_BLUR_SHRINK = 8


def ffmpeg_colour(fill: str) -> str:
    return _NAMED_COLOURS.get(fill) or "0x" + fill.removeprefix("#").upper()


_SHORT_SIDE = {"480p": 480, "720p": 720}


def short_side(resolution: Resolution) -> int:
    """The height of a landscape frame (the width of a portrait one) at `resolution`."""
    return _SHORT_SIDE[resolution]


def even(value: float | Fraction) -> int:
    """Nearest even integer, at least 2 (4:2:0 needs even dimensions)."""
    return max(2, round(value / 2) * 2)


def frame_size(fmt: Format, resolution: Resolution) -> tuple[int, int]:
    short = short_side(resolution)
    long = (short * 16 // 9 + 1) // 2 * 2
    return {"landscape": (long, short), "portrait": (short, long), "square": (short, short)}[fmt]


class FitPlan(BaseModel):
    """Scale to `scaled`, then crop (cover) or pad (contain) to `frame`, centred."""

    fit: Fit
    source: tuple[int, int]
    frame: tuple[int, int]
    scaled: tuple[int, int]
    offset: tuple[int, int]  # crop origin in the scaled picture, or pad origin in the frame
    fill: Fill = "black"

    @property
    def letterboxed(self) -> bool:
        return self.fit == "contain" and self.scaled != self.frame

    def filters(self) -> str:
        """A linear filter chain (no labels). A blurred fill needs a graph: use `graph` for that."""
        (w, h), (sw, sh), (x, y) = self.frame, self.scaled, self.offset
        chain = f"scale={sw}:{sh}:flags=lanczos:out_range=tv,setsar=1"
        if self.fit == "cover" and (sw, sh) != (w, h):
            chain += f",crop={w}:{h}:{x}:{y}"
        elif self.letterboxed:
            colour = ffmpeg_colour("black" if self.fill == "blur" else self.fill)
            chain += f",pad={w}:{h}:{x}:{y}:color={colour}"
        return chain

    def graph(self, src: str, out: str) -> str:
        """Filter graph statements from pad `src` to pad `out` (labels without brackets)."""
        if not (self.letterboxed and self.fill == "blur"):
            return f"[{src}]{self.filters()}[{out}]"
        (w, h), (sw, sh), (x, y) = self.frame, self.scaled, self.offset
        small = plan_fit(*self.source, (even(w / _BLUR_SHRINK), even(h / _BLUR_SHRINK)), "cover")
        (bw, bh), (bx, by) = small.frame, small.offset
        sigma = max(1.0, min(bw, bh) / 12)
        return (
            f"[{src}]split=2[{out}_fg][{out}_bgsrc];"
            f"[{out}_bgsrc]scale={small.scaled[0]}:{small.scaled[1]}:flags=bilinear:out_range=tv,"
            f"crop={bw}:{bh}:{bx}:{by},gblur=sigma={sigma:.1f},eq=brightness=-0.08:saturation=0.85,"
            f"scale={w}:{h}:flags=bicubic,setsar=1[{out}_bg];"
            f"[{out}_fg]scale={sw}:{sh}:flags=lanczos:out_range=tv,setsar=1[{out}_fgs];"
            f"[{out}_bg][{out}_fgs]overlay=x={x}:y={y}:format=yuv420[{out}]"
        )

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
        if self.letterboxed:
            d["fill"] = self.fill
        return d


def plan_fit(
    width: int, height: int, frame: tuple[int, int], fit: Fit, sar: str | None = None, fill: str = "black"
) -> FitPlan:
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
    return FitPlan(fit=fit, source=(width, height), frame=frame, scaled=(sw, sh), offset=offset, fill=fill)
