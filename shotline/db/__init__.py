"""The shared database: the request ledger, the clip cache index, the daily budget and fal upload URLs.

`SHOTLINE_DATABASE_URL` names it (`postgresql://user@host:port/db` in production); by default it is a SQLite
file under SHOTLINE_HOME, so a laptop needs no server. Every host that shares the database shares every
guarantee built on it: one submit per clip, one budget, one cache.
"""

from shotline.db.engine import Database, open_database

__all__ = ["Database", "open_database"]
