"""Shared fixtures. Each fake server lives in tests/fakes/ and registers its fixtures as a plugin."""

pytest_plugins = [
    "tests.fakes.fal_server",
    "tests.fakes.s3_server",
]
