"""Durable before answering: what a request committed is on disk before its answer says so."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections


def sync_commits_to_disk(using: str = DEFAULT_DB_ALIAS) -> None:
    """Wait until what this connection committed would survive a power loss.

    PostgreSQL's commit already waits for its WAL to reach the disk (synchronous_commit). calsync's
    SQLite backend commits without an fsync and syncs here instead (`calsync.sqlite_backend`).
    """
    sync = getattr(connections[using], "sync_to_disk", None)
    if sync is not None:
        sync()
