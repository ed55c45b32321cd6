"""How the sensors and schedules behave, from the environment: operators change these, never the code.

- SHOTLINE_SENSOR_INTERVAL_S (30): seconds between ticks of the storyboard, reel and clip automation sensors.
- SHOTLINE_AUTORUN (1): storyboard_sensor runs clip_job for new and changed shots; 0: it only registers them,
  and runs come from UI backfills and the schedules.
- SHOTLINE_SWEEP_CRON ("0 2 * * *"): when nightly_sweep retries failed shots.
- SHOTLINE_REFRESH_CRON ("0 5 * * *"): when nightly_refresh re-cuts stale reels (and rebuilds the ledger).
- SHOTLINE_SCHEDULE_TIMEZONE ("UTC"): the IANA time zone of both cron strings.
- SHOTLINE_ARCHIVE_AFTER_DAYS (unset: off): archive_sensor archives storyboards untouched that many days.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dagster._utils.schedules import is_valid_cron_string
from pydantic import BaseModel, ConfigDict

DEFAULT_SENSOR_INTERVAL_S = 30
DEFAULT_SWEEP_CRON = "0 2 * * *"
DEFAULT_REFRESH_CRON = "0 5 * * *"


class OperatingSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    sensor_interval_s: int = DEFAULT_SENSOR_INTERVAL_S
    autorun: bool = True
    sweep_cron: str = DEFAULT_SWEEP_CRON
    refresh_cron: str = DEFAULT_REFRESH_CRON
    timezone: str = "UTC"
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
    if not is_valid_cron_string(raw):
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
        return "UTC"
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name} must be an IANA time zone such as 'Europe/Paris', not {raw!r}") from None
    return raw
