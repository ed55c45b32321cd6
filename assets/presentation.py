"""The people-first part of materialization metadata, shared by the assets: pictures and a clip's facts under
people's names, placed before the machine keys (uri, sha256, cost_usd...), which stay as they are.

Dagster 1.13 renders a markdown entry inline only under 1,000 characters. So a clip gets two pictures: a
thumbnail small enough to show inline in the metadata table, and a preview a few times larger that the UI
shows behind "[Show Markdown]" on its row, one click away on every materialization and partition page.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import dagster as dg

from shotline.errors import MediaError
from shotline.previews import (
    SHEET_MAX_BYTES,
    SHEET_WIDTH,
    THUMBNAIL_WIDTH,
    ClipCard,
    data_uri_budget,
    image_preview,
    preview_markdown,
    video_frame,
)
from shotline.production_ledger import LedgerTotals

INLINE_MARKDOWN_LIMIT = 1000  # characters: Dagster 1.13's UI shows longer markdown behind a button
THUMBNAIL_LABEL = "Thumbnail"
PREVIEW_LABEL = "Preview image"
SHEET_LABEL = "Contact sheet"


def card_metadata(
    card: ClipCard, *, image: Path | None = None, video: Path | None = None
) -> dict[str, dg.MetadataValue]:
    """The card's entries: the thumbnail and preview (of `image`, else of the frame in the middle of `video`),
    the facts, then the link that opens the clip and when it expires."""
    entries: dict[str, dg.MetadataValue] = {}
    try:
        if image is not None:
            entries |= _pictures(image, card)
        elif video is not None:
            with video_frame(video, at_s=(card.duration_s or 0.0) / 2) as frame:
                entries |= _pictures(frame, card)
    except MediaError as exc:  # pictures are for people: never the reason a stage (or what it paid for) fails
        entries[PREVIEW_LABEL] = dg.MetadataValue.text(f"no preview: {exc}")
    entries.update({label: dg.MetadataValue.text(text) for label, text in card.facts()})
    if card.link:
        entries["Open clip"] = dg.MetadataValue.url(card.link)
    if card.link_expires_at:
        entries["Link expires"] = dg.MetadataValue.timestamp(card.link_expires_at)
    return entries


def link_metadata(expires_at: datetime | None, **links: str | None) -> dict[str, dg.MetadataValue]:
    """Links to published objects as URL entries (those given as None left out) and, when they are presigned,
    `url_expires_at`, when they stop working."""
    entries: dict[str, dg.MetadataValue] = {name: dg.MetadataValue.url(url) for name, url in links.items() if url}
    if entries and expires_at is not None:
        entries["url_expires_at"] = dg.MetadataValue.timestamp(expires_at)
    return entries


def _pictures(picture: Path, card: ClipCard) -> dict[str, dg.MetadataValue]:
    entries = {}
    alt = card.shot_id
    budget = data_uri_budget(INLINE_MARKDOWN_LIMIT - 1 - len(preview_markdown("", alt)))
    try:
        thumbnail = image_preview(picture, width=THUMBNAIL_WIDTH, max_bytes=budget)
        entries[THUMBNAIL_LABEL] = dg.MetadataValue.md(preview_markdown(thumbnail, alt))
    except MediaError:
        pass  # a picture so busy that not even a thumbnail fits inline: the preview is still there
    entries[PREVIEW_LABEL] = dg.MetadataValue.md(preview_markdown(image_preview(picture), card.title))
    return entries


def sheet_metadata(sheet: Path, alt: str) -> dict[str, dg.MetadataValue]:
    """The contact sheet, inline."""
    try:
        uri = image_preview(sheet, width=SHEET_WIDTH, max_bytes=SHEET_MAX_BYTES)
    except MediaError as exc:
        return {SHEET_LABEL: dg.MetadataValue.text(f"no preview: {exc}")}
    return {SHEET_LABEL: dg.MetadataValue.md(preview_markdown(uri, alt))}


def ledger_summary(title: str, totals: LedgerTotals) -> dict[str, dg.MetadataValue]:
    """The storyboard's totals in one line of markdown (short enough to show inline, above the table)."""
    states = ", ".join(
        f"{count} {state}"
        for state, count in (
            ("published", totals.published),
            ("stale", totals.stale),
            ("failed", totals.failed),
            ("running", totals.running),
            ("pending", totals.pending),
        )
        if count
    )
    text = (
        f"**{title}**: {totals.shots} shots ({states or 'none yet'}) · current clips cost **${totals.cost_usd:.2f}**"
        f" · every take paid for: **${totals.takes_cost_usd:.2f}** ({totals.takes_paid} takes)"
        f" · {totals.cache_hits} reused from the cache"
    )
    return {"Totals": dg.MetadataValue.md(text)}
