"""A writer process for tests/test_sqlite_writelock.py: calsync's SQLite backend on a given file.

python -m tests.sqlite_writer holder <database>   # holds a transaction until a writer queues, then 20 more
python -m tests.sqlite_writer waiter <database>   # one transaction
"""

from __future__ import annotations

import fcntl
import sys
import time

import django
from django.conf import settings

ROUNDS = 20


def queued(database: str) -> bool:
    """Whether another process holds the lock's turnstile: a writer is waiting for the lock."""
    from calsync.sqlite_backend.writelock import lock_paths

    with open(lock_paths(database)[1], "a") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe, fcntl.LOCK_UN)
        return False


def main(role: str, database: str) -> int:
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "calsync.sqlite_backend",
                "NAME": database,
                "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
            }
        },
        USE_TZ=True,
    )
    django.setup()
    from django.db import connection, transaction

    def write(n: int) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("INSERT INTO log (who, n) VALUES (%s, %s)", [role, n])

    if role == "waiter":
        write(0)
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("INSERT INTO log (who, n) VALUES (%s, %s)", [role, 0])
        print("holding", flush=True)
        deadline = time.monotonic() + 60
        while not queued(database):  # an ordering test: how long this takes does not matter
            if time.monotonic() > deadline:
                return 2
            time.sleep(0.001)
    # Back-to-back transactions, like a worker's bookkeeping: the waiter must get in after the first.
    for n in range(1, ROUNDS + 1):
        write(n)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
