"""Dagster partition keys of shots: `<storyboard_id>__<shot_id>`."""

from __future__ import annotations

from shotline.errors import InputError

PARTITION_SEPARATOR = "__"


def partition_key(storyboard_id: str, shot_id: str) -> str:
    return f"{storyboard_id}{PARTITION_SEPARATOR}{shot_id}"


def split_partition_key(key: str) -> tuple[str, str]:
    storyboard_id, sep, shot_id = key.partition(PARTITION_SEPARATOR)
    if not sep or not storyboard_id or not shot_id:
        raise InputError(f"partition key {key!r} is not <storyboard_id>{PARTITION_SEPARATOR}<shot_id>")
    return storyboard_id, shot_id
