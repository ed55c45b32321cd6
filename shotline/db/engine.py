"""Open the shared database: build the engine, bring the schema to the newest migration, import old JSON.

SQLite (the default) serialises writers with `BEGIN IMMEDIATE`, so a read-modify-write transaction cannot
interleave with another process's; on Postgres the same transactions take row locks (`SELECT ... FOR
UPDATE`). Migrations run under a lock (a Postgres advisory lock; SQLite's write lock), so many hosts may
start at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from shotline.db.tables import VERSION_TABLE
from shotline.errors import ConfigError

MIGRATIONS = Path(__file__).with_name("migrations")
# pg_advisory_xact_lock key for migrations: any constant shared by every host
_MIGRATION_LOCK = 0x5_0_7_11E
_open: dict[str, Database] = {}
_open_lock = threading.Lock()


class Database:
    """An engine plus what the schema needs from its dialect."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield conn

    def insert_ignoring_duplicates(self, conn: Connection, table: sa.Table, values: dict[str, Any]) -> bool:
        """INSERT unless a row with the same primary key exists; True if this call inserted it."""
        if self.is_postgres:
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            statement: Any = pg_insert(table).values(**values).on_conflict_do_nothing()
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement = sqlite_insert(table).values(**values).on_conflict_do_nothing()
        return bool(conn.execute(statement).rowcount)


def sqlite_url(home: Path) -> str:
    """The default database: a SQLite file in SHOTLINE_HOME (enough for one host)."""
    return f"sqlite:///{(home / 'shotline.db').resolve()}"


def open_database(url: str) -> Database:
    """The database at `url` (a SQLAlchemy URL, `postgresql://...` or `sqlite:///...`), migrated, once per
    process. Raises ConfigError naming SHOTLINE_DATABASE_URL when it cannot be reached or used."""
    with _open_lock:
        db = _open.get(url)
        if db is None:
            db = Database(_engine(url))
            try:
                migrate(db)
            except SQLAlchemyError as exc:
                db.engine.dispose()
                raise ConfigError(
                    f"SHOTLINE_DATABASE_URL: cannot use the database {_safe(url)}: "
                    f"{type(exc).__name__}: {_first_line(exc)}",
                    field="SHOTLINE_DATABASE_URL",
                ) from None
            _open[url] = db
        return db


def migrate(db: Database) -> None:
    """Bring the schema to the newest revision (idempotent; safe when many hosts do it at once)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    with db.engine.connect() as probe:
        current = MigrationContext.configure(probe, opts={"version_table": VERSION_TABLE}).get_current_revision()
        if current == head:
            return
    with db.begin() as conn:
        if db.is_postgres:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"SHOTLINE_DATABASE_URL is not a database URL: {_safe(url)} (use postgresql://user@host:port/db)",
            field="SHOTLINE_DATABASE_URL",
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 60}, pool_pre_ping=True)
        _serialise_sqlite_writers(engine)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            # the driver shotline installs (SQLAlchemy 2.1's own default is psycopg 3)
            parsed = parsed.set(drivername="postgresql+psycopg2")
        return sa.create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=4)
    raise ConfigError(
        f"SHOTLINE_DATABASE_URL: {backend!r} databases are not supported; use postgresql:// or sqlite:///",
        field="SHOTLINE_DATABASE_URL",
    )


def _serialise_sqlite_writers(engine: Engine) -> None:
    """pysqlite defers BEGIN until the first write, so two read-modify-write transactions could interleave.
    Take SQLite's write lock at the start of every transaction instead (the recipe in SQLAlchemy's docs)."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=60000")
        except Exception:  # a read-only or network filesystem may refuse WAL; the default journal works too
            pass
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable)"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


__all__ = ["Database", "OperationalError", "migrate", "open_database"]
