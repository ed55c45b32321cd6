"""How the commands name a storyboard: its folder, its storyboard.yaml, or its id under SHOTLINE_STORYBOARDS."""

from __future__ import annotations

from pathlib import Path

from shotline.config import Settings
from shotline.errors import InputError
from shotline.storyboard import STORYBOARD_FILE
from shotline.storyboard_source import local_storyboards_root


def storyboard_folder(target: str, settings: Settings) -> Path:
    path = Path(target)
    if (path / STORYBOARD_FILE).is_file():
        return path
    if path.name == STORYBOARD_FILE:
        return path.parent
    # an s3:// location is read through its current local snapshot
    return local_storyboards_root(settings.storyboards, settings.home) / target


def shot_target(target: str) -> tuple[str, str]:
    """(storyboard id, shot id) of `<storyboard_id>/<shot_id>`."""
    storyboard_id, _, shot_id = target.strip().strip("/").partition("/")
    if not storyboard_id or not shot_id or "/" in shot_id:
        raise InputError(f"{target!r} does not name a shot: give <storyboard_id>/<shot_id>")
    return storyboard_id, shot_id
