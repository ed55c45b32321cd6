"""Check the configuration before anything runs (and before any money is spent): the database can be
reached and migrated, the work store and the publish destination exist and can be written, the storyboards
can be read, the content-credential chain signs. Each failure is a ConfigError naming its environment
variable; secrets never appear."""

from __future__ import annotations

from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from shotline import s3
from shotline.config import Settings
from shotline.db import open_database
from shotline.errors import ConfigError, InputError
from shotline.publish import publisher_for
from shotline.store import check_writable, open_store
from shotline.storyboard_source import local_storyboards_root


def preflight(settings: Settings) -> list[str]:
    """Raise ConfigError on the first setting that cannot work; return what was checked, for people."""
    checked = []
    db = open_database(settings.database_target)
    checked.append(f"database: {db.engine.url.render_as_string(hide_password=True)} (schema current)")
    store = open_store(settings.store_target, settings.home, cache_max_bytes=settings.cache_max_bytes)
    store.check()
    checked.append(f"work store: {store.location}")
    checked.append(f"publish to: {_check_publish(settings.publish_target)}")
    root = local_storyboards_root(settings.storyboards, settings.home)
    if not Path(root).is_dir():
        raise ConfigError(f"SHOTLINE_STORYBOARDS: {settings.storyboards} is not a folder", field="SHOTLINE_STORYBOARDS")
    checked.append(f"storyboards: {settings.storyboards}")
    if settings.generator == "fal" and settings.fal_key is None:
        raise ConfigError("SHOTLINE_GENERATOR is 'fal' but FAL_KEY is not set", field="FAL_KEY")
    checked.append(f"content credentials: {_check_credentials(settings)}")
    return checked


def _check_credentials(settings: Settings) -> str:
    """The signing chain loads, holds to C2PA's rules and signs a test image; the trust anchors parse."""
    from shotline.credentials.keys import load_signing_keys, load_trust_anchors
    from shotline.credentials.signing import ContentSigner

    anchors = load_trust_anchors(settings.credentials)
    keys = load_signing_keys(settings.credentials)
    if keys is None:
        return "signing off (SHOTLINE_C2PA=off): deliverables carry no content credentials"
    ContentSigner(keys).self_test()
    trusted = "; verification also trusts SHOTLINE_C2PA_TRUST_ANCHORS" if anchors else ""
    return f"signing with {keys.describe()}{trusted}"


def _check_publish(target: str) -> str:
    try:
        publisher = publisher_for(target)
    except InputError as exc:
        raise ConfigError(exc.detail, field="SHOTLINE_PUBLISH_URI") from None
    if not target.startswith("s3://"):
        check_writable(Path(target.removeprefix("file://")), "SHOTLINE_PUBLISH_URI")
        return target
    bucket = getattr(publisher, "bucket", "")
    try:
        publisher.client.head_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError(
            f"SHOTLINE_PUBLISH_URI: cannot use bucket {bucket!r}: {s3.describe_error(exc)}",
            field="SHOTLINE_PUBLISH_URI",
        ) from None
    return target
