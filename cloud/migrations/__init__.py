"""Alembic migrations of the cloud schema (run through :mod:`cloud.core.migrate`, never by hand)."""
