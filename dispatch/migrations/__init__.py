"""Alembic migrations of the dispatch store (run programmatically by dispatch.core.db.upgrade)."""
