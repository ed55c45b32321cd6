"""The two partition sets: one partition per shot (`<storyboard_id>__<shot_id>`), one per storyboard."""

import dagster as dg

shots = dg.DynamicPartitionsDefinition(name="shots")
storyboards = dg.DynamicPartitionsDefinition(name="storyboards")
