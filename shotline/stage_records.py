"""The typed records stages hand each other through the working store.

Each stage writes one record of what it made, at `records/<kind>/<key>.json` where the key is the sha256 of
the record's canonical JSON: writing the same record again changes nothing, and a record read back can be
checked against its key. A stage's materialization carries only that key (and the kind) beside what people
read in the UI; the next stage reads the record by key, validated, instead of picking values out of upstream
metadata.

Records never say where a host keeps the store's files: the store may be shared by every run host, and such a
path is only good on the host that wrote it. A record names its files by sha256; its `*_in(store)` methods
fetch them (an image's `resolved` is where it was read from, recorded as a fact, not used to find it).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from shotline.errors import MediaError, ShotlineError
from shotline.finishing import CutReel, CutReelFacts, FinishedClip, FinishedClipFacts
from shotline.generators.cache import GeneratedClip, GeneratedClipFacts
from shotline.hashing import stable_hash
from shotline.images import SourcedImage, SourcedImageFacts, stored_image
from shotline.manifest import ReelClip
from shotline.production_ledger import ProductionLedger
from shotline.prompts import RenderedPrompt
from shotline.publish import PublishedClip, PublishedObject
from shotline.store import StoredObject, StoreError, WorkStore
from shotline.storyboard import FIRST_TAKE

_KEY = re.compile(r"[0-9a-f]{64}")
_Facts = TypeVar("_Facts", bound=BaseModel)


class StageRecordError(ShotlineError):
    """A stage's record that is missing from the store or is not what that stage writes. The message names
    the stage, the record key and what to do."""


class StageRecord(BaseModel):
    """What one stage made, as the stages after it read it. Subclasses set `kind` (the store's folder of
    records) and `stage` (the asset that writes it), and say which sha256 is the stage's data version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[str]
    stage: ClassVar[str]

    @property
    def data_version(self) -> str:
        """The sha256 of what the stage made: its Dagster data version."""
        raise NotImplementedError

    def document(self) -> dict[str, Any]:
        """The record as stored: its fields as JSON, with its kind."""
        return {"kind": self.kind, **self.model_dump(mode="json")}

    def key(self) -> str:
        return stable_hash(self.document())

    def write(self, store: WorkStore) -> str:
        """Store the record under its key (idempotent: same record, same key, same bytes); returns the key."""
        key = self.key()
        store.put_record(self.kind, key, self.document())
        return key

    @classmethod
    def read(cls, store: WorkStore, key: str) -> Self:
        """The record stored under `key`, validated; StageRecordError if it is missing, altered or not this
        stage's."""
        if not _KEY.fullmatch(key):
            raise StageRecordError(f"{cls.stage}: {key!r} is not a record key (64 hex digits)")
        where = f"the {cls.stage} record {key} ({store.record_uri(cls.kind, key)})"
        document = _load(store, cls.kind, key, where)
        if document is None:
            raise StageRecordError(f"{where} is not in the working store {store.location}: re-materialize {cls.stage}")
        if not isinstance(document, dict) or stable_hash(document) != key:
            raise StageRecordError(f"{where} does not match its key (altered or corrupt): re-materialize {cls.stage}")
        if document.get("kind") != cls.kind:
            raise StageRecordError(f"{where} is a {document.get('kind')!r} record, not a {cls.kind!r} one")
        try:
            return cls.model_validate({k: v for k, v in document.items() if k != "kind"})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(record)'}: {e['msg']}" for e in exc.errors())
            raise StageRecordError(
                f"{where} is not a valid {cls.kind} record ({problems}): re-materialize {cls.stage}"
            ) from None


def _load(store: WorkStore, kind: str, key: str, where: str) -> Any:
    try:
        return store.get_record(kind, key)
    except ValueError as exc:  # a local record that is not JSON
        raise StageRecordError(f"{where} is not valid JSON ({exc})") from None
    except StoreError as exc:
        raise StageRecordError(f"{where} cannot be read: {exc}") from None


def _stored(store: WorkStore, sha256: str, suffix: str, what: str, stage: str) -> StoredObject:
    found = store.get(sha256, suffix)
    if found is None:
        raise MediaError(
            f"{what} {sha256[:12]} is gone from the working store {store.location}: re-materialize {stage}"
        )
    return found


def _facts_of(model: BaseModel, facts: type[_Facts]) -> _Facts:
    """`model` without its local paths: the facts model ignores the fields it does not declare."""
    return facts.model_validate(model.model_dump())


# --- the per-shot chain: source_image -> clip_prompt -> raw_clip -> final_clip -> published_clip ------------


class SourcedImageRecord(StageRecord):
    kind: ClassVar[str] = "sourced_image"
    stage: ClassVar[str] = "source_image"

    image: SourcedImageFacts

    @classmethod
    def of(cls, image: SourcedImage) -> Self:
        return cls(image=_facts_of(image, SourcedImageFacts))

    @property
    def data_version(self) -> str:
        return self.image.sha256

    def image_in(self, store: WorkStore) -> SourcedImage:
        """The normalised image from the store, checked against its sha256 (the next step may pay for it)."""
        return stored_image(self.image.model_dump(mode="json"), store)


class PromptRecord(StageRecord):
    kind: ClassVar[str] = "rendered_prompt"
    stage: ClassVar[str] = "clip_prompt"

    prompt: RenderedPrompt
    sha256: str  # of the prompt's JSON in the working store

    @property
    def data_version(self) -> str:
        return self.sha256


class GeneratedClipRecord(StageRecord):
    kind: ClassVar[str] = "generated_clip"
    stage: ClassVar[str] = "raw_clip"

    clip: GeneratedClipFacts

    @classmethod
    def of(cls, clip: GeneratedClip) -> Self:
        return cls(clip=_facts_of(clip, GeneratedClipFacts))

    @property
    def data_version(self) -> str:
        return self.clip.sha256

    def video_in(self, store: WorkStore) -> StoredObject:
        return _stored(store, self.clip.sha256, ".mp4", "the raw clip", self.stage)


class FinishedClipRecord(StageRecord):
    kind: ClassVar[str] = "finished_clip"
    stage: ClassVar[str] = "final_clip"

    clip: FinishedClipFacts

    @classmethod
    def of(cls, clip: FinishedClip) -> Self:
        return cls(clip=_facts_of(clip, FinishedClipFacts))

    @property
    def data_version(self) -> str:
        return self.clip.sha256

    def video_in(self, store: WorkStore) -> StoredObject:
        return _stored(store, self.clip.sha256, ".mp4", "the final clip", self.stage)

    def thumbnail_in(self, store: WorkStore) -> StoredObject:
        return _stored(store, self.clip.thumbnail_sha256, ".jpg", "the final clip's thumbnail", self.stage)

    @property
    def silent(self) -> bool:
        """Whether finishing gave the clip a silent track (its source had no sound)."""
        return any(step.get("step") == "silent_audio" for step in self.clip.render.steps)


class PublishedClipRecord(StageRecord):
    kind: ClassVar[str] = "published_clip"
    stage: ClassVar[str] = "published_clip"

    published: PublishedClip  # without presigned links, which expire
    spec_sha256: str  # the shot spec it was published for
    generation: GeneratedClipFacts | None = None  # the generated clip it was made from (None in older records)

    @classmethod
    def of(cls, published: PublishedClip, *, spec_sha256: str, generation: GeneratedClipFacts | None = None) -> Self:
        return cls(published=published.without_links(), spec_sha256=spec_sha256, generation=generation)

    @property
    def data_version(self) -> str:
        return self.published.sha256

    @property
    def take(self) -> int:
        return self.generation.take if self.generation is not None else FIRST_TAKE


# --- per storyboard --------------------------------------------------------------------------------------


class ReelRecord(StageRecord):
    kind: ClassVar[str] = "published_reel"
    stage: ClassVar[str] = "storyboard_reel"

    reel: CutReelFacts
    published: PublishedClip  # without presigned links
    clips: list[ReelClip]

    @classmethod
    def of(cls, reel: CutReel, published: PublishedClip, clips: list[ReelClip]) -> Self:
        return cls(reel=_facts_of(reel, CutReelFacts), published=published.without_links(), clips=clips)

    @property
    def data_version(self) -> str:
        return self.reel.sha256


class ContactSheetRecord(StageRecord):
    kind: ClassVar[str] = "contact_sheet"
    stage: ClassVar[str] = "contact_sheet"

    sheet: PublishedObject  # without its presigned link
    shots: list[str]
    missing: list[str]  # shots drawn without a thumbnail
    width: int
    height: int

    @property
    def data_version(self) -> str:
        return self.sheet.sha256


class ProductionLedgerRecord(StageRecord):
    kind: ClassVar[str] = "production_ledger"
    stage: ClassVar[str] = "production_ledger"

    ledger: ProductionLedger
    json_document: PublishedObject  # without presigned links
    csv_document: PublishedObject

    @property
    def data_version(self) -> str:
        return self.json_document.sha256
