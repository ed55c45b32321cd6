"""The resources the assets take, bound to the design's environment variables through `Settings`
(pipelines.definitions), whose defaults they share; the fal key comes in through an EnvVar so it is never
shown in the UI or stored in run config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field, PrivateAttr, SecretStr

from shotline.config import (
    DEFAULT_CACHE_MAX_BYTES,
    DEFAULT_FAL_API_URL,
    DEFAULT_FAL_CDN_URL,
    DEFAULT_FAL_DEADLINE_S,
    DEFAULT_FAL_LEASE_S,
    DEFAULT_FAL_MAX_ATTEMPTS,
    DEFAULT_FAL_MAX_POLL_INTERVAL_S,
    DEFAULT_FAL_MODEL,
    DEFAULT_FAL_POLL_INTERVAL_S,
    DEFAULT_FAL_QUEUE_URL,
    DEFAULT_FAL_REST_URL,
    DEFAULT_HOME,
    DEFAULT_STORYBOARDS,
    Settings,
)
from shotline.credentials.settings import CredentialSettings
from shotline.db import Database, open_database
from shotline.db.engine import sqlite_url
from shotline.db.json_import import import_json_records
from shotline.fal.ledger import LedgerEntry
from shotline.generators.base import Generator
from shotline.publish import Publisher, publisher_for
from shotline.store import WorkStore, open_store
from shotline.storyboard import Shot, Storyboard, load_storyboard, split_partition_key
from shotline.storyboard_source import local_storyboards_root

if TYPE_CHECKING:
    from shotline.credentials.signing import ContentSigner


class WorkspaceResource(dg.ConfigurableResource):
    """Where storyboards are read from and where intermediates are kept."""

    storyboards: str = Field(
        default=DEFAULT_STORYBOARDS, description="SHOTLINE_STORYBOARDS: folder or s3://bucket/prefix"
    )
    home: str = Field(default=DEFAULT_HOME, description="SHOTLINE_HOME: the local working store")
    store_uri: str = Field(
        default="", description="SHOTLINE_STORE_URI: s3://bucket/prefix shared by every host; empty = SHOTLINE_HOME"
    )
    cache_max_bytes: int = Field(
        default=DEFAULT_CACHE_MAX_BYTES, ge=1, description="SHOTLINE_CACHE_MAX_BYTES: local cache of an s3 store"
    )
    database_url: str = Field(
        default="",
        description="SHOTLINE_DATABASE_URL: request ledger, clip index and budget; empty = SQLite under SHOTLINE_HOME",
    )

    # Dagster gives every run and every sensor tick its own copy of the resource: these live that long.
    _store: WorkStore | None = PrivateAttr(default=None)
    _storyboards_root: Path | None = PrivateAttr(default=None)

    def store(self) -> WorkStore:
        """The working store, opened and checked (ConfigError naming the variable) once per instance."""
        if self._store is None:
            store = open_store(self.store_uri, Path(self.home), cache_max_bytes=self.cache_max_bytes)
            store.check()
            self._store = store
        return self._store

    def database(self) -> Database:
        """The shared database, migrated (ConfigError naming SHOTLINE_DATABASE_URL if it cannot be used)."""
        db = open_database(self.database_url or sqlite_url(Path(self.home)))
        import_json_records(db, Path(self.home))  # what earlier versions kept in files, once
        return db

    def storyboards_root(self) -> Path:
        """The storyboards folder; an s3:// location is synced once per instance (one run or tick), so every
        read in it sees the same snapshot."""
        if self._storyboards_root is None:
            self._storyboards_root = local_storyboards_root(self.storyboards, Path(self.home))
        return self._storyboards_root

    def storyboard(self, storyboard_id: str) -> Storyboard:
        return load_storyboard(self.storyboards_root() / storyboard_id)

    def shot(self, partition_key: str) -> tuple[Storyboard, Shot]:
        storyboard_id, shot_id = split_partition_key(partition_key)
        storyboard = self.storyboard(storyboard_id)
        return storyboard, storyboard.shot(shot_id)


class GeneratorResource(dg.ConfigurableResource):
    """Which generator makes the clips, and how to reach fal."""

    kind: str = Field(default="preview", description="SHOTLINE_GENERATOR: fal or preview")
    fal_key: str | None = Field(default=None, repr=False, description="FAL_KEY, through an EnvVar (never shown)")
    fal_queue_url: str = Field(default=DEFAULT_FAL_QUEUE_URL, description="SHOTLINE_FAL_QUEUE_URL")
    fal_rest_url: str = Field(default=DEFAULT_FAL_REST_URL, description="SHOTLINE_FAL_REST_URL: fal storage API")
    fal_cdn_url: str = Field(
        default=DEFAULT_FAL_CDN_URL, description="SHOTLINE_FAL_CDN_URL: fal's CDN (uploads, media)"
    )
    fal_api_url: str = Field(default=DEFAULT_FAL_API_URL, description="SHOTLINE_FAL_API_URL: fal's platform API")
    fal_max_attempts: int = Field(
        default=DEFAULT_FAL_MAX_ATTEMPTS,
        ge=1,
        description="SHOTLINE_FAL_MAX_ATTEMPTS: most requests per clip after unbilled, retryable failures",
    )
    fal_model: str = Field(default=DEFAULT_FAL_MODEL, description="SHOTLINE_FAL_MODEL")
    budget_usd: float | None = Field(default=None, description="SHOTLINE_BUDGET_USD: daily cap on generation spend")
    deadline_s: float = Field(
        default=DEFAULT_FAL_DEADLINE_S,
        gt=0,
        description="SHOTLINE_FAL_DEADLINE_S: most a clip may take from submit to checked video; past it the "
        "fal request is cancelled",
    )
    queue_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="SHOTLINE_FAL_QUEUE_TIMEOUT_S: sent as X-Fal-Request-Timeout, how long fal may keep a "
        "request waiting to start before dropping it (unbilled); default: the deadline",
    )
    lease_s: float = Field(
        default=DEFAULT_FAL_LEASE_S,
        gt=0,
        description="SHOTLINE_FAL_LEASE_S: a worker holds its clip this long without renewing before another "
        "host may take it over (after a crash)",
    )
    poll_interval_s: float = Field(
        default=DEFAULT_FAL_POLL_INTERVAL_S,
        gt=0,
        description="SHOTLINE_FAL_POLL_INTERVAL_S: first wait between status polls",
    )
    max_poll_interval_s: float = Field(
        default=DEFAULT_FAL_MAX_POLL_INTERVAL_S,
        gt=0,
        description="SHOTLINE_FAL_MAX_POLL_INTERVAL_S: the wait between polls grows x1.5 up to this",
    )

    @property
    def model(self) -> str | None:
        return self.fal_model if self.kind == "fal" else None

    def build(
        self, store: WorkStore, db: Database, *, on_record: Callable[[LedgerEntry], None] | None = None
    ) -> Generator:
        """The generator; `on_record` sees every fal ledger record as it is written (fal only)."""
        from shotline.generators.factory import build_generator

        fal_options: dict[str, Any] = {}
        if self.kind == "fal":
            fal_options = {
                "db": db,
                "rest_url": self.fal_rest_url,
                "cdn_url": self.fal_cdn_url,
                "api_url": self.fal_api_url,
                "max_attempts": self.fal_max_attempts,
                "generator_options": {"lease_s": self.lease_s},
                "queue_timeout_s": self.queue_timeout_s,
                "on_record": on_record,
                "poll_interval": self.poll_interval_s,
                "max_poll_interval": max(self.max_poll_interval_s, self.poll_interval_s),
            }
        return build_generator(
            kind=self.kind,
            store=store,
            fal_key=SecretStr(self.fal_key) if self.fal_key else None,
            fal_queue_url=self.fal_queue_url,
            fal_model=self.fal_model,
            budget_usd=self.budget_usd,
            deadline_s=self.deadline_s,
            **fal_options,
        )


class PublisherResource(dg.ConfigurableResource):
    """Where finished clips go: SHOTLINE_PUBLISH_URI, an s3://bucket/prefix or a local folder."""

    publish_uri: str = Field(default=Settings().publish_target)

    def publisher(self) -> Publisher:
        return publisher_for(self.publish_uri)


class CredentialsResource(dg.ConfigurableResource):
    """Content credentials (C2PA): who signs every deliverable, and what verification trusts. A key given as PEM
    in the environment comes in through an EnvVar, so it is never shown in the UI or stored in run config."""

    enabled: bool = Field(default=True, description="SHOTLINE_C2PA: off disables signing")
    home: str = Field(default=DEFAULT_HOME, description="SHOTLINE_HOME: where the development chain is made")
    cert: str = Field(
        default="", description="SHOTLINE_C2PA_CERT: PEM chain, signing certificate first; empty = development chain"
    )
    key: str = Field(default="", description="SHOTLINE_C2PA_KEY: the signing key, a PEM file")
    key_pem: str | None = Field(
        default=None, repr=False, description="SHOTLINE_C2PA_KEY_PEM, through an EnvVar (never shown)"
    )
    tsa_url: str = Field(default="", description="SHOTLINE_C2PA_TSA_URL: the timestamp authority")
    trust_anchors: str = Field(
        default="", description="SHOTLINE_C2PA_TRUST_ANCHORS: PEM roots verification trusts besides the default list"
    )

    # loaded once per instance (one run): the chain is read and checked once
    _loaded: bool = PrivateAttr(default=False)
    _signer: ContentSigner | None = PrivateAttr(default=None)
    _anchors: str | None = PrivateAttr(default=None)

    def settings(self) -> CredentialSettings:
        return CredentialSettings(
            enabled=self.enabled,
            home=Path(self.home),
            cert=Path(self.cert) if self.cert else None,
            key=Path(self.key) if self.key else None,
            key_pem=SecretStr(self.key_pem) if self.key_pem else None,
            tsa_url=self.tsa_url or None,
            trust_anchors=Path(self.trust_anchors) if self.trust_anchors else None,
        )

    def _load(self) -> None:
        if self._loaded:
            return
        from shotline.credentials.keys import load_signing_keys, load_trust_anchors
        from shotline.credentials.signing import ContentSigner

        settings = self.settings()
        keys = load_signing_keys(settings)
        self._signer = ContentSigner(keys) if keys is not None else None
        self._anchors = load_trust_anchors(settings)
        self._loaded = True

    def signer(self) -> ContentSigner | None:
        """Who signs (None when SHOTLINE_C2PA=off); ConfigError naming the variable when the chain cannot work."""
        self._load()
        return self._signer

    def trust_anchors_pem(self) -> str | None:
        self._load()
        return self._anchors

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A chain that cannot sign fails the run as it starts: before raw_clip pays for a generation.
        self._load()
