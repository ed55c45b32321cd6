"""A sensor's state that is too big for its cursor, kept in the instance's key-value store.

Dagster stores a sensor's cursor with every tick it keeps, so a cursor of one entry per storyboard (or, worse,
per shot) costs its size again at every tick. The state lives instead under two keys of the instance's
key-value table, used in turn; the cursor says which generation was committed last. A tick writes its new state
to the other key and returns the next generation as its cursor: if Dagster does not commit that tick, the next
one still reads the previous state, intact. A cursor reset from the UI (no cursor) starts from an empty state.
"""

from __future__ import annotations

import json
from typing import Any

import dagster as dg

_PREFIX = "shotline/sensor-state"


class SensorState:
    """The state of the sensor `name`, as of the generation its cursor names."""

    def __init__(self, instance: dg.DagsterInstance, name: str, cursor: str | None) -> None:
        self._instance = instance
        self._name = name
        parsed = _parse(cursor)
        self.generation: int = int(parsed.get("generation", 0))
        self.extra: dict[str, Any] = {k: v for k, v in parsed.items() if k != "generation"}

    def _key(self, generation: int) -> str:
        return f"{_PREFIX}/{self._name}/{generation % 2}"

    def load(self) -> dict[str, Any]:
        """The committed state; empty when there is none yet (or the cursor was reset)."""
        if self.generation == 0:
            return {}
        key = self._key(self.generation)
        raw = self._instance.run_storage.get_cursor_values({key}).get(key)
        try:
            state = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return state if isinstance(state, dict) and state.get("generation") == self.generation else {}

    def commit(self, state: dict[str, Any], **extra: Any) -> str:
        """Write `state` as the next generation; returns the cursor that commits it."""
        generation = self.generation + 1
        body = json.dumps({**state, "generation": generation}, sort_keys=True, separators=(",", ":"))
        self._instance.run_storage.set_cursor_values({self._key(generation): body})
        return self.cursor(generation=generation, **extra)

    def cursor(self, *, generation: int | None = None, **extra: Any) -> str:
        """The cursor naming `generation` (default: the current one, unchanged)."""
        body = {**self.extra, **extra, "generation": self.generation if generation is None else generation}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _parse(cursor: str | None) -> dict[str, Any]:
    """The cursor's fields; a cursor from before this state (or unreadable) counts as none."""
    if not cursor:
        return {}
    try:
        parsed = json.loads(cursor)
    except ValueError:
        return {}
    if not isinstance(parsed, dict) or not isinstance(parsed.get("generation"), int):
        return {}
    return parsed
