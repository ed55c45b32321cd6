"""What a Grok Imagine Video 1.5 clip costs on fal.

fal bills image-to-video per second of output video, by resolution, plus a flat fee per input image (the
model page, https://fal.ai/models/xai/grok-imagine-video/v1.5/image-to-video): 480p $0.08/s, 720p $0.14/s,
+$0.01 per image.

Rounding: fal reports the returned clip's duration from its frame count (6 s at 24 fps comes back as
145 frames = 6.041667 s), so the returned duration is never the billed number itself. We bill the
*requested* whole seconds. When only the returned duration is known it is rounded to the nearest whole
second (half up, at least 1). Money is computed in Decimal and rounded half up to cents.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

PRICE_PER_SECOND_USD: dict[str, Decimal] = {
    "480p": Decimal("0.08"),
    "720p": Decimal("0.14"),
}
PRICE_PER_INPUT_IMAGE_USD = Decimal("0.01")

_CENT = Decimal("0.01")


def _per_second(resolution: str) -> Decimal:
    try:
        return PRICE_PER_SECOND_USD[resolution]
    except KeyError:
        known = ", ".join(sorted(PRICE_PER_SECOND_USD))
        raise ValueError(f"no price for resolution {resolution!r} (priced: {known})") from None


def to_cents(amount: Decimal | float | int | str) -> Decimal:
    """`amount` rounded half up to whole cents (floats go through str() so 0.1 stays 0.1)."""
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def estimate_cost(resolution: str, duration_s: int | float, images: int = 1) -> Decimal:
    """Price of a clip of `duration_s` seconds at `resolution` from `images` input images, in USD."""
    if duration_s < 0 or images < 0:
        raise ValueError("duration_s and images must not be negative")
    seconds = Decimal(str(duration_s))
    return to_cents(_per_second(resolution) * seconds + PRICE_PER_INPUT_IMAGE_USD * images)


def estimate_cost_usd(resolution: str, duration_s: int | float, images: int = 1) -> float:
    """`estimate_cost` as a float of whole cents, for metadata and JSON."""
    return float(estimate_cost(resolution, duration_s, images))


def billed_seconds(requested_duration_s: int | None, returned_duration_s: float | None = None) -> int:
    """Whole seconds fal bills for a finished clip: the requested duration; else the returned one rounded."""
    if requested_duration_s is not None:
        if requested_duration_s < 1:
            raise ValueError(f"requested duration must be at least 1 s, not {requested_duration_s}")
        return int(requested_duration_s)
    if returned_duration_s is None:
        raise ValueError("need the requested or the returned duration to price a clip")
    rounded = Decimal(str(returned_duration_s)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return max(1, int(rounded))


def clip_cost(
    resolution: str,
    returned_duration_s: float | None,
    *,
    requested_duration_s: int | None = None,
    images: int = 1,
) -> Decimal:
    """Price of a finished clip, from what fal returned (see the module docstring for the rounding)."""
    return estimate_cost(resolution, billed_seconds(requested_duration_s, returned_duration_s), images)


def clip_cost_usd(
    resolution: str,
    returned_duration_s: float | None,
    *,
    requested_duration_s: int | None = None,
    images: int = 1,
) -> float:
    return float(clip_cost(resolution, returned_duration_s, requested_duration_s=requested_duration_s, images=images))
