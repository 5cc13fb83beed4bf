"""Storage: SQLAlchemy Core over SQLite (default) or PostgreSQL."""

from humasflow.storage.store import Store, database_url

__all__ = ["Store", "database_url"]
