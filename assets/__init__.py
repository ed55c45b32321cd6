"""The Dagster assets of shotline, one module per stage, with their checks."""

import warnings

import dagster as dg

# The per-shot and per-storyboard checks are partitioned on purpose (each shot's status of its own), which
# Dagster 1.13 still calls a preview and warns about at every import, in every process: the code server,
# each run, `make demo`. Only that exact warning is silenced; every other one still shows.
warnings.filterwarnings(
    "ignore",
    message=r"Specifying a partitions_def on an AssetCheckSpec is currently in preview",
    category=dg.PreviewWarning,
)
