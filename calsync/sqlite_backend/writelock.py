"""A blocking, fair write lock shared by every process that writes to one SQLite file.

SQLite lets one connection write at a time, and a connection that finds the file locked does not
queue: its busy handler sleeps and retries in growing steps (1, 2, 5, 10 … up to 100 ms a step). While
the worker commits many short transactions back to back, a waiting webhook acknowledgement keeps waking
between them to find the lock taken again and sleeps longer each time: in the benchmark it waited up
to a second behind transactions that each held the lock for about a millisecond.

Taken before SQLite's own lock, this one turns that polling into a queue:

* between processes, `flock()` on `<database>-writelock`: the kernel wakes a waiter the moment the
  holder unlocks, or dies, so a crashed holder never leaves it locked. flock alone does not hand the
  lock over (a holder that unlocks and locks again at once can win again), so a second file,
  `<database>-writelock-queue`, is a turnstile: a writer locks it, then the lock, then unlocks it. A
  writer that waits for the lock holds the turnstile, so the holder's next transaction queues behind
  it: while someone waits, writers alternate instead of one of them starving.
* between the threads of one process, a `threading.Lock` in front of the process's one pair of
  descriptors (flock locks belong to the open file, which the threads share). Its wait is bounded by
  the database's `timeout`, like SQLite's own: a thread waiting on another connection of its own
  process that never commits fails with "database is locked" as before, instead of hanging.

The wait for another process is not bounded: it lasts as long as that process holds a transaction
open, which SQLite would make every other writer wait for too. SQLite's locking stays in charge of
correctness: this lock only orders calsync's writers (anything else writing to the file, the sqlite3
shell or a backup, is still kept apart by SQLite), and without `fcntl` (Windows) only the in-process
part remains.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: threads are still ordered; processes fall back to SQLite's own waiting
    fcntl = None  # type: ignore[assignment]


class WriteLockTimeout(Exception):
    """Another thread of this process held the write lock longer than the database's timeout."""


def lock_paths(database: str) -> tuple[str, str]:
    """(the lock, its turnstile): files beside the database."""
    return f"{database}-writelock", f"{database}-writelock-queue"


class ProcessWriteLock:
    """The write lock of one database file in one process, shared by the connections of its threads."""

    def __init__(self, database: str):
        self.database = database
        self._threads = threading.Lock()
        self._fds: tuple[int, int] | None = None
        self._pid = 0

    def _descriptors(self) -> tuple[int, int] | None:
        if fcntl is None:
            return None
        # A forked child opens its own: sharing the parent's open files would make both one holder.
        if self._fds is None or self._pid != os.getpid():
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            lock, queue = lock_paths(self.database)
            self._fds = (os.open(lock, flags, 0o600), os.open(queue, flags, 0o600))
            self._pid = os.getpid()
        return self._fds

    def acquire(self, timeout: float) -> None:
        if not self._threads.acquire(timeout=timeout if timeout > 0 else -1):
            raise WriteLockTimeout(f"database is locked: another thread held its write lock for {timeout:g}s")
        try:
            fds = self._descriptors()
            if fds is not None:
                lock, queue = fds
                fcntl.flock(queue, fcntl.LOCK_EX)  # behind whoever already waits for the lock
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX)  # until the holder in another process lets go
                finally:
                    fcntl.flock(queue, fcntl.LOCK_UN)
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        try:
            if self._fds is not None and self._pid == os.getpid():
                fcntl.flock(self._fds[0], fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def after_fork(self) -> None:
        """In a forked child: start unlocked, whatever the parent's threads held when it forked."""
        self._threads = threading.Lock()
        if self._fds is not None and self._pid != os.getpid():
            # Closing the child's copies leaves the parent's locks alone: it still has the files open.
            for fd in self._fds:
                os.close(fd)
            self._fds = None


_locks: dict[str, ProcessWriteLock] = {}
_locks_guard = threading.Lock()


def write_lock_for(database: str) -> ProcessWriteLock:
    """The process's one lock for a database file, whichever connection asks."""
    key = str(Path(database).resolve())
    with _locks_guard:
        if key not in _locks:
            _locks[key] = ProcessWriteLock(key)
        return _locks[key]


def _after_fork_in_child() -> None:
    global _locks_guard
    _locks_guard = threading.Lock()
    for lock in _locks.values():
        lock.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
