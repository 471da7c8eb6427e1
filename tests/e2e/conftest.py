"""Fixtures for end-to-end tests: they need a PostgreSQL server (DATABASE_URL) and start real processes."""

from __future__ import annotations

import pytest

from tests.e2e.harness import CalsyncStack, fresh_database, postgres_server_url


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def pg_server() -> str:
    url = postgres_server_url()
    if url is None:
        pytest.skip("end-to-end tests need DATABASE_URL=postgres://… (scripts/test.sh starts a server)")
    return url


@pytest.fixture
def stack_factory(pg_server, tmp_path, request):
    """Start calsync stacks on fresh databases; stop them and drop the databases afterwards."""
    stacks: list[CalsyncStack] = []
    contexts = []

    def start(*, workers: int = 1, extra_env: dict[str, str] | None = None) -> CalsyncStack:
        ctx = fresh_database(pg_server)
        database_url = ctx.__enter__()
        contexts.append(ctx)
        stack = CalsyncStack(database_url, tmp_path, extra_env=extra_env)
        stacks.append(stack)
        return stack.start(workers=workers)

    yield start
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    for stack in stacks:
        if failed:
            print(stack.logs())
        stack.stop()
    for ctx in contexts:
        ctx.__exit__(None, None, None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
