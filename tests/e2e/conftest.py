"""Fixtures for end-to-end tests: they need a PostgreSQL server (DATABASE_URL) and start real processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import CalsyncStack, fresh_database, postgres_server_url
from tests.e2e.services import Emulators, RedisServer


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def pg_server() -> str:
    url = postgres_server_url()
    if url is None:
        pytest.skip("end-to-end tests need DATABASE_URL=postgres://… (scripts/test.sh starts a server)")
    return url


class Run:
    """Everything one test (or one module) starts; `close()` stops it all and drops the databases."""

    def __init__(self, pg_server: str, log_dir: Path):
        self.pg_server = pg_server
        self.log_dir = log_dir
        self.stacks: list[CalsyncStack] = []
        self.services: list[Any] = []
        self._databases: list[Any] = []

    def stack(self, *, workers: int = 1, extra_env: dict[str, str] | None = None, **start_options: Any) -> CalsyncStack:
        ctx = fresh_database(self.pg_server)
        database_url = ctx.__enter__()
        self._databases.append(ctx)
        stack = CalsyncStack(database_url, self.log_dir, extra_env=extra_env)
        self.stacks.append(stack)
        return stack.start(workers=workers, **start_options)

    def emulators(self, **options: Any) -> Emulators:
        emulators = Emulators(self.log_dir, **options)
        self.services.append(emulators)
        return emulators.start()

    def redis(self) -> RedisServer:
        if not RedisServer.available():
            pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does it)")
        redis = RedisServer(self.log_dir)
        self.services.append(redis)
        return redis.start()

    def logs(self) -> str:
        parts = [stack.logs() for stack in self.stacks]
        parts += [service.logs() for service in self.services if hasattr(service, "logs")]
        return "\n\n".join(parts)

    def close(self, *, failed: bool = False) -> None:
        if failed:
            print(self.logs())
        for stack in self.stacks:
            stack.stop()
        for service in reversed(self.services):
            service.stop()
        for ctx in self._databases:
            ctx.__exit__(None, None, None)


@pytest.fixture
def e2e(pg_server, tmp_path, request):
    """Start stacks, emulators and redis for one test; all of it is stopped afterwards."""
    run = Run(pg_server, tmp_path)
    yield run
    run.close(failed=getattr(getattr(request.node, "rep_call", None), "failed", False))


@pytest.fixture
def stack_factory(e2e):
    """Start calsync stacks on fresh databases; stop them and drop the databases afterwards."""
    return e2e.stack


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
