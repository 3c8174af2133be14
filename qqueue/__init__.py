"""qqueue: run quantum circuits asynchronously on a PostgreSQL-only task queue."""

__version__ = "0.1.0"
