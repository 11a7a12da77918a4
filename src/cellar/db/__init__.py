"""Persistence: SQLAlchemy rows, keyword-only repository functions, Alembic migrations."""
