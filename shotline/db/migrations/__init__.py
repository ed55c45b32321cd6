"""Alembic migrations of shotline's own tables."""
