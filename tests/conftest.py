"""Shared fixtures. Each fake server lives in testkit/fakes/ and registers its fixtures as a plugin; so does the
real PostgreSQL server of testkit/postgres_server.py."""

pytest_plugins = [
    "testkit.fakes.fal_server",
    "testkit.fakes.s3_server",
    "testkit.postgres_server",
]
