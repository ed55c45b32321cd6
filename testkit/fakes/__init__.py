"""Fake services on loopback that behave as the real ones are documented to."""
