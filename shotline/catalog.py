"""The storyboards under a location, each loaded and validated; the broken ones reported, not fatal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shotline.errors import StoryboardError
from shotline.storyboard import Storyboard, discover_storyboards, load_storyboard


@dataclass
class Catalog:
    storyboards: list[Storyboard] = field(default_factory=list)
    errors: list[StoryboardError] = field(default_factory=list)

    def shot_specs(self) -> dict[str, str]:
        """partition key -> hash of the shot's resolved spec, for every valid shot."""
        return {shot.partition_key: sb.shot_spec_hash(shot) for sb in self.storyboards for shot in sb.shots}


def scan(root: str | Path) -> Catalog:
    catalog = Catalog()
    for folder in discover_storyboards(root):
        try:
            catalog.storyboards.append(load_storyboard(folder))
        except StoryboardError as exc:
            catalog.errors.append(exc)
    return catalog
