"""Lineage: the manifests assembled from what each stage recorded (`build`), and followed back from a published
object, a storyboard/shot or a bare mp4 (`trace`). Showing a trace to people is the CLI's (shotline.cli.lineage)."""

from shotline.lineage.build import clip_manifest, package_version, reel_manifest, storyboard_ref
from shotline.lineage.trace import Trace, trace

__all__ = ["Trace", "clip_manifest", "package_version", "reel_manifest", "storyboard_ref", "trace"]
