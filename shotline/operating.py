"""How the sensors and schedules behave, from the environment: operators change these, never the code.

- SHOTLINE_SENSOR_INTERVAL_S (30): seconds between ticks of the storyboard, reel, clip automation and review
  sensors.
- SHOTLINE_AUTORUN (1): storyboard_sensor runs clip_job for new and changed shots; 0: it only registers them,
  and runs come from UI backfills and the schedules.
- SHOTLINE_SWEEP_CRON ("0 2 * * *"): when nightly_sweep retries failed shots.
- SHOTLINE_REFRESH_CRON ("0 5 * * *"): when nightly_refresh re-cuts stale reels (and rebuilds the ledger).
- SHOTLINE_SCHEDULE_TIMEZONE ("UTC"): the IANA time zone of both cron strings.
- SHOTLINE_ARCHIVE_AFTER_DAYS (unset: off): archive_sensor archives storyboards untouched that many days.

Part of `shotline.config.Settings` (its `operating`), which the Dagster definitions are built from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict

DEFAULT_SENSOR_INTERVAL_S = 30
DEFAULT_SWEEP_CRON = "0 2 * * *"
DEFAULT_REFRESH_CRON = "0 5 * * *"
DEFAULT_TIMEZONE = "UTC"


class OperatingSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    sensor_interval_s: int = DEFAULT_SENSOR_INTERVAL_S
    autorun: bool = True
    sweep_cron: str = DEFAULT_SWEEP_CRON
    refresh_cron: str = DEFAULT_REFRESH_CRON
    timezone: str = DEFAULT_TIMEZONE
    archive_after_days: float | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatingSettings:
        env = os.environ if env is None else env
        return cls(
            sensor_interval_s=_interval(env, "SHOTLINE_SENSOR_INTERVAL_S"),
            autorun=_flag(env, "SHOTLINE_AUTORUN", default=True),
            sweep_cron=_cron(env, "SHOTLINE_SWEEP_CRON", DEFAULT_SWEEP_CRON),
            refresh_cron=_cron(env, "SHOTLINE_REFRESH_CRON", DEFAULT_REFRESH_CRON),
            timezone=_timezone(env, "SHOTLINE_SCHEDULE_TIMEZONE"),
            archive_after_days=_days(env, "SHOTLINE_ARCHIVE_AFTER_DAYS"),
        )


def _raw(env: Mapping[str, str], name: str) -> str:
    return (env.get(name) or "").strip()


def _interval(env: Mapping[str, str], name: str) -> int:
    raw = _raw(env, name)
    if not raw:
        return DEFAULT_SENSOR_INTERVAL_S
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name} must be a whole number of seconds, 1 or more, not {raw!r}")
    return int(raw)


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = _raw(env, name).lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 1 or 0, not {raw!r}")


def _cron(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _raw(env, name)
    if not raw:
        return default
    if not is_cron_string(raw):
        raise ValueError(f"{name} must be a cron string such as {default!r}, not {raw!r}")
    return raw


def _days(env: Mapping[str, str], name: str) -> float | None:
    raw = _raw(env, name)
    if not raw:
        return None
    try:
        days = float(raw)
    except ValueError:
        days = float("nan")
    if not days > 0 or days == float("inf"):
        raise ValueError(f"{name} must be a positive number of days, not {raw!r}")
    return days


def _timezone(env: Mapping[str, str], name: str) -> str:
    raw = _raw(env, name)
    if not raw:
        return DEFAULT_TIMEZONE
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name} must be an IANA time zone such as 'Europe/Paris', not {raw!r}") from None
    return raw


# --- cron strings, as Dagster's schedules read them -----------------------------------------------------------

# (lowest, highest, names) of minute, hour, day of month, month, day of week (0 and 7 are both Sunday)
_CRON_FIELDS = (
    (0, 59, ()),
    (0, 23, ()),
    (1, 31, ()),
    (1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    (0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_CRON_ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_NTH_WEEKDAY = re.compile(r"^[0-7]#[1-5]$")
_CRON_ITEM = re.compile(r"^(?P<range>\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(?P<step>[0-9]+))?$")


def is_cron_string(text: str) -> bool:
    """Whether a schedule can run on `text`: five fields (minute hour day-of-month month day-of-week), each a
    list of `*`, values (numbers, or month and day names) and ranges, with optional `/step` (and `L`, the last
    day of the month, `d#n`, the nth weekday d); or an alias such as `@daily`. February 30th or 31st alone is
    refused, as Dagster refuses it."""
    text = text.strip().lower()
    if text in _CRON_ALIASES:
        return True
    fields = text.split()
    if len(fields) != 5:
        return False
    expanded = []
    for field, (low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        values = _cron_field(field, low, high, names)
        if values is None:
            return False
        expanded.append(values)
    return not (expanded[3] == {2} and len(expanded[2]) == 1 and expanded[2] <= {30, 31})


def _cron_field(field: str, low: int, high: int, names: tuple[str, ...]) -> set[int] | None:
    """The values a cron field names, or None if it is not one."""
    values: set[int] = set()
    for item in field.split(","):
        if (item == "l" and high == 31) or (names and high == 7 and _NTH_WEEKDAY.match(item)):
            values.add(-1)  # the month's last day, the nth weekday of the month: any month has one
            continue
        m = _CRON_ITEM.match(item)
        if m is None:
            return None
        step = int(m["step"]) if m["step"] else 1
        if m["range"] == "*":
            start, end = low, high
        else:
            bounds = [b for v in m["range"].split("-") if (b := _cron_value(v, low, names)) is not None]
            if len(bounds) != len(m["range"].split("-")) or not all(low <= b <= high for b in bounds):
                return None
            start, end = bounds[0], bounds[-1]
        if step < 1:
            return None
        # a range may wrap around (fri-mon), as croniter, which Dagster uses, reads it
        span = [*range(start, end + 1)] if start <= end else [*range(start, high + 1), *range(low, end + 1)]
        values.update(span[::step])
    return values


def _cron_value(text: str, low: int, names: tuple[str, ...]) -> int | None:
    if text.isdigit():
        return int(text)
    return names.index(text) + low if text in names else None
