"""Shared fixtures. Each fake server lives in tests/fakes/ and registers its fixtures as a plugin; so does the
real PostgreSQL server of tests/postgres_server.py."""

pytest_plugins = [
    "tests.fakes.fal_server",
    "tests.fakes.s3_server",
    "tests.postgres_server",
]
