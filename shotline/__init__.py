"""shotline core: storyboards to published clips, with no Dagster import."""
