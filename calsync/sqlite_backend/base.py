"""Django's SQLite backend, with calsync's write lock taken around every write (see `writelock`).

The lock is taken before `BEGIN IMMEDIATE` (an `atomic` block) and released after its COMMIT or
ROLLBACK, and around each write statement run outside a transaction (autocommit: django-q2's broker,
`QuerySet.update()`, `save()` outside `atomic`), which takes SQLite's write lock just the same.
Reads take nothing: in WAL mode they never wait for the writer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db.backends.sqlite3 import base as sqlite3_base
from django.db.utils import OperationalError

from calsync.sqlite_backend.writelock import ProcessWriteLock, WriteLockTimeout, write_lock_for

# Statements that take SQLite's write lock when run outside a transaction. One that is missed (a write
# behind a CTE, say) is still correct: it only waits SQLite's way instead of in the queue.
WRITE_STATEMENTS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


def is_write(sql: str) -> bool:
    return sql.lstrip()[:7].upper().startswith(WRITE_STATEMENTS)


class CursorWrapper(sqlite3_base.SQLiteCursorWrapper):
    """Django's cursor; a write outside a transaction holds the write lock while it runs."""

    database: DatabaseWrapper

    def _locks(self, query: str) -> bool:
        return not self.connection.in_transaction and is_write(query)

    @contextmanager
    def _write_lock_for(self, query: str) -> Iterator[None]:
        if not self._locks(query):
            yield
            return
        self.database.acquire_write_lock()
        try:
            yield
        finally:
            self.database.release_write_lock()

    def execute(self, query: str, params: Any = None) -> Any:
        with self._write_lock_for(query):
            return super().execute(query, params)

    def executemany(self, query: str, param_list: Any) -> Any:
        with self._write_lock_for(query):
            return super().executemany(query, param_list)


class DatabaseWrapper(sqlite3_base.DatabaseWrapper):
    # None: an in-memory database (the tests' default), with no file and no other process to order.
    write_lock: ProcessWriteLock | None = None
    holds_write_lock = False

    def get_new_connection(self, conn_params: dict) -> Any:
        conn = super().get_new_connection(conn_params)
        self.write_lock = None if self.is_in_memory_db() else write_lock_for(self.settings_dict["NAME"])
        return conn

    def create_cursor(self, name: str | None = None) -> CursorWrapper:
        cursor = self.connection.cursor(factory=CursorWrapper)
        cursor.database = self
        return cursor

    def acquire_write_lock(self) -> None:
        if self.write_lock is None or self.holds_write_lock:
            return
        try:
            # SQLite's own default busy timeout is 5 s.
            self.write_lock.acquire(float(self.settings_dict["OPTIONS"].get("timeout", 5)))
        except WriteLockTimeout as exc:
            raise OperationalError(str(exc)) from exc
        self.holds_write_lock = True

    def release_write_lock(self) -> None:
        if self.holds_write_lock:
            self.holds_write_lock = False
            self.write_lock.release()

    def sync_to_disk(self) -> None:
        """Make every transaction committed so far survive a power loss: fsync the WAL.

        The database runs WAL with synchronous=NORMAL: a commit writes its pages to the WAL without
        waiting for the disk, so the worker's many small commits cost microseconds instead of an fsync
        each (4.4 ms on the benchmark machine's disk) while holding the write lock. The acknowledgement
        of a webhook must not be undone by a power cut (Calendly will not send it again), so intake
        calls this after its commit: outside the write lock, so other writers go on meanwhile. Pages a
        checkpoint already moved into the database file were synced by that checkpoint.
        """
        if self.is_in_memory_db():
            return
        name = str(self.settings_dict["NAME"])
        path = f"{name}-wal" if os.path.exists(f"{name}-wal") else name
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _start_transaction_under_autocommit(self) -> None:
        self.acquire_write_lock()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self.release_write_lock()
            raise

    def _commit(self) -> None:
        try:
            super()._commit()
        finally:
            self.release_write_lock()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self.release_write_lock()

    def _close(self) -> None:
        # Closing ends any transaction still open (SQLite rolls it back): nothing is held any more.
        try:
            super()._close()
        finally:
            self.release_write_lock()
