"""Storyboards: the YAML format, its validation and the resolved per-shot spec.

A storyboard is a folder `<storyboard_id>/` holding `storyboard.yaml`, its images and optional
`templates/*.j2`. Every shot inherits `defaults` and may override any of them. Loading reports every
problem at once, each naming the file, the shot and the field; nothing but `StoryboardError` comes out of
it, whatever the file holds (hostile YAML included: alias bombs, deep nesting, duplicate keys, bad bytes).

- `model`: the fields, their limits, defaults and overrides, and the resolved `Shot`
- `loader`: `load_storyboard` / `inspect_storyboard`, every problem at once
- `yaml_reader`: hostile-YAML limits
- `paths`: files named by a storyboard, held inside its folder
- `keys`: Dagster partition keys of shots
"""

from shotline.storyboard.keys import PARTITION_SEPARATOR, partition_key, split_partition_key
from shotline.storyboard.loader import discover_storyboards, inspect_storyboard, load_storyboard
from shotline.storyboard.model import (
    FIRST_TAKE,
    MAX_TEMPLATE_BYTES,
    SLUG,
    STORYBOARD_FILE,
    ReelSpec,
    Shot,
    Storyboard,
    check_take,
)
from shotline.storyboard.paths import PathRefused, resolve_inside

__all__ = [
    "FIRST_TAKE",
    "MAX_TEMPLATE_BYTES",
    "PARTITION_SEPARATOR",
    "SLUG",
    "STORYBOARD_FILE",
    "PathRefused",
    "ReelSpec",
    "Shot",
    "Storyboard",
    "check_take",
    "discover_storyboards",
    "inspect_storyboard",
    "load_storyboard",
    "partition_key",
    "resolve_inside",
    "split_partition_key",
]
