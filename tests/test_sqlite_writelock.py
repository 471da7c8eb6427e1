"""calsync's SQLite backend: the cross-process write lock (calsync/sqlite_backend)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections, transaction
from django.db.utils import ConnectionHandler, OperationalError

from calsync.sqlite_backend.base import is_write
from calsync.sqlite_backend.writelock import ProcessWriteLock, WriteLockTimeout, write_lock_for

ROOT = Path(__file__).resolve().parents[1]
fcntl = pytest.importorskip("fcntl")
# Under libfaketime (scripts/test.sh's shifted-clock pass) a lock's timed wait never times out: the two tests of
# that timeout would hang there; the plain SQLite pass runs them.
timed_waits = pytest.mark.skipif(
    "faketime" in os.environ.get("LD_PRELOAD", ""), reason="timed waits hang under faketime"
)


def make_database(path: Path) -> str:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, who TEXT, n INTEGER)")
    return str(path)


@pytest.fixture
def file_db(tmp_path: Path, django_db_blocker) -> Iterator[tuple[str, object]]:
    """A connection of calsync's backend to a SQLite file, registered as connections['lockfile']."""
    name = make_database(tmp_path / "db.sqlite3")
    # A handler of its own: Django's wants a "default"; the wrapper is then lent to the global one.
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "calsync.sqlite_backend",
                "NAME": name,
                "OPTIONS": {"timeout": 1, "transaction_mode": "IMMEDIATE"},
            }
        }
    )
    wrapper = handler["default"]
    connections["lockfile"] = wrapper
    with django_db_blocker.unblock():
        yield name, wrapper
        wrapper.close()
    del connections["lockfile"]


class Recorder:
    """Stands in for the process lock and records what the backend does with it."""

    def __init__(self):
        self.calls: list[str] = []

    def acquire(self, timeout: float) -> None:
        self.calls.append("acquire")

    def release(self) -> None:
        self.calls.append("release")


def test_waiting_writer_gets_the_lock_before_the_holders_next_transaction(tmp_path: Path):
    """Two processes: one holds a transaction, then commits 20 more back to back; the other waits.

    SQLite's busy handler would have the waiter sleeping while the holder's transactions follow one another:
    the waiter's row would land last. With the lock it lands right after the holder's first transaction.
    """
    database = make_database(tmp_path / "db.sqlite3")
    writer = [sys.executable, "-m", "tests.sqlite_writer"]
    holder = subprocess.Popen([*writer, "holder", database], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        waiter = subprocess.run([*writer, "waiter", database], cwd=ROOT, timeout=120)
        assert waiter.returncode == 0
        assert holder.wait(timeout=120) == 0, "the holder never saw the waiter queue"
    finally:
        holder.kill()
    with sqlite3.connect(database) as db:
        order = db.execute("SELECT who, n FROM log ORDER BY id").fetchall()
    assert order[:3] == [("holder", 0), ("waiter", 0), ("holder", 1)]
    assert len(order) == 22


def test_atomic_block_holds_the_lock_from_begin_to_commit(file_db):
    _name, wrapper = file_db
    wrapper.ensure_connection()
    wrapper.write_lock = recorder = Recorder()
    with transaction.atomic(using="lockfile"):
        assert recorder.calls == ["acquire"]
        with wrapper.cursor() as cursor:
            cursor.execute("INSERT INTO log (who, n) VALUES ('a', 1)")
            cursor.execute("UPDATE log SET n = 2")
        assert recorder.calls == ["acquire"]  # writes inside the transaction are already covered
    assert recorder.calls == ["acquire", "release"]


def test_rolled_back_block_releases_the_lock(file_db):
    _name, wrapper = file_db
    wrapper.ensure_connection()
    wrapper.write_lock = recorder = Recorder()
    with pytest.raises(ZeroDivisionError), transaction.atomic(using="lockfile"):
        with wrapper.cursor() as cursor:
            cursor.execute("INSERT INTO log (who, n) VALUES ('a', 1)")
        1 / 0  # noqa: B018
    assert recorder.calls == ["acquire", "release"]
    assert not wrapper.holds_write_lock


def test_autocommit_writes_take_the_lock_and_reads_do_not(file_db):
    _name, wrapper = file_db
    wrapper.ensure_connection()
    wrapper.write_lock = recorder = Recorder()
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM log")
        assert recorder.calls == []
        cursor.execute("INSERT INTO log (who, n) VALUES ('a', 1)")
        assert recorder.calls == ["acquire", "release"]
        cursor.executemany("UPDATE log SET n = %s WHERE who = %s", [(2, "a"), (3, "b")])
    assert recorder.calls == ["acquire", "release"] * 2


def test_a_file_database_uses_the_process_lock(file_db):
    name, wrapper = file_db
    wrapper.ensure_connection()
    assert wrapper.write_lock is write_lock_for(name)


@timed_waits
def test_a_thread_waits_at_most_the_timeout_for_another_of_its_process():
    """Threads share the process's open lock files: between them the wait is bounded, like SQLite's."""
    lock = ProcessWriteLock("unused")  # the files are opened only once the thread lock is taken
    lock._threads.acquire()  # another thread of this process holds it
    errors: list[Exception] = []

    def second() -> None:
        try:
            lock.acquire(timeout=0.01)
        except WriteLockTimeout as exc:
            errors.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join()
    assert len(errors) == 1
    lock._threads.release()


@timed_waits
def test_the_backend_reports_a_thread_timeout_as_database_locked(file_db):
    name, wrapper = file_db
    wrapper.ensure_connection()
    lock = write_lock_for(name)
    lock._threads.acquire()  # another thread of this process is mid-transaction
    try:
        with pytest.raises(OperationalError, match="database is locked"), wrapper.cursor() as cursor:
            cursor.execute("INSERT INTO log (who, n) VALUES ('a', 1)")
    finally:
        lock._threads.release()
    assert not wrapper.holds_write_lock


@pytest.mark.parametrize(
    ("sql", "writes"),
    [
        ('INSERT INTO "t" VALUES (1)', True),
        ('  UPDATE "t" SET a = 1', True),
        ('delete from "t"', True),
        ('CREATE TABLE "t" (a int)', True),
        ('SELECT * FROM "t"', False),
        ("PRAGMA foreign_keys = ON", False),
        ("SAVEPOINT s1", False),
    ],
)
def test_is_write(sql: str, writes: bool):
    assert is_write(sql) is writes


def test_the_sqlite_default_uses_calsyncs_backend(settings):
    if connections["default"].vendor != "sqlite":
        pytest.skip("PostgreSQL: Django's backend, untouched")
    from calsync import settings as calsync_settings

    assert calsync_settings.DATABASES["default"]["ENGINE"] == "calsync.sqlite_backend"


def test_sync_to_disk_fsyncs_the_wal_a_commit_left_unsynced(file_db, monkeypatch):
    name, wrapper = file_db
    wrapper.ensure_connection()
    with wrapper.cursor() as cursor:
        cursor.execute("INSERT INTO log (who, n) VALUES ('a', 1)")
    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        "calsync.sqlite_backend.base.os.fsync",
        lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)),
    )
    wrapper.sync_to_disk()
    assert synced == [f"{name}-wal"]


def test_an_accepted_delivery_is_synced_to_disk_before_the_answer(monkeypatch, db):
    from bookings.intake import Outcome, store_delivery
    from tests.conftest import load_fixture

    synced: list[str] = []
    monkeypatch.setattr("bookings.intake.sync_commits_to_disk", lambda: synced.append("synced"))
    result = store_delivery(load_fixture("calendly/invitee_created.json"))
    assert result.outcome == Outcome.ACCEPTED and synced == ["synced"]
    assert store_delivery(load_fixture("calendly/invitee_created.json")).outcome == Outcome.DUPLICATE
    assert synced == ["synced"]  # a redelivery was already on disk
