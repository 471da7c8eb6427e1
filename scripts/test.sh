#!/usr/bin/env bash
# Sets up everything and runs the whole test suite: lint, then pytest on SQLite, then on PostgreSQL.
#   bash scripts/test.sh              # everything
#   bash scripts/test.sh -k webhook   # extra arguments go to pytest
# A second SQLite pass runs the unit tests under a clock shifted far ahead (needs Debian's faketime).
# PostgreSQL: uses $DATABASE_URL if it is a postgres:// URL; otherwise starts a throwaway server on
# loopback from Debian's `postgresql` package. CALSYNC_TEST_POSTGRES=skip runs SQLite only.
set -euo pipefail
source "$(dirname "$0")/_venv.sh" requirements-dev.txt
cd "$ROOT"

echo "== ruff"
"$VENV_PY" -m ruff check .
"$VENV_PY" -m ruff format --check .
echo "== import rules (docs/architecture.md; contracts in pyproject.toml)"
"$ROOT/.venv/bin/lint-imports" --no-cache

echo "== tests on SQLite"
# End-to-end tests start real processes against PostgreSQL: they run in the PostgreSQL pass only.
env -u DATABASE_URL "$VENV_PY" -m pytest -m "not e2e" "$@"

# The unit suite again with the machine's clock 400 days ahead (Debian's `faketime`): a test that
# only passes near the day it was written fails here the day it is written, not months later.
# SQLite only, no end-to-end or browser tests, so it stays cheap. CALSYNC_TEST_SHIFTED=skip skips it.
if [ "${CALSYNC_TEST_SHIFTED:-}" = "skip" ]; then
  echo "== shifted-clock run skipped (CALSYNC_TEST_SHIFTED=skip)"
elif ! command -v faketime >/dev/null 2>&1; then
  echo "faketime is not installed: install it (apt-get install faketime) or set CALSYNC_TEST_SHIFTED=skip" >&2
  exit 1
else
  echo "== unit tests on SQLite, clock shifted ${CALSYNC_TEST_SHIFT:-+400d}"
  env -u DATABASE_URL faketime -f "${CALSYNC_TEST_SHIFT:-+400d}" \
    "$VENV_PY" -m pytest -q -p no:cacheprovider -m "not e2e and not browser" "$@"
fi

if [ "${CALSYNC_TEST_POSTGRES:-}" = "skip" ]; then
  echo "== PostgreSQL run skipped (CALSYNC_TEST_POSTGRES=skip)"
  exit 0
fi
source "$ROOT/scripts/pg.sh"
if [[ "${DATABASE_URL:-}" != postgres* ]]; then
  if ! pg_bindir >/dev/null; then
    echo "PostgreSQL is not installed: install it (apt-get install postgresql) or set DATABASE_URL, or CALSYNC_TEST_POSTGRES=skip" >&2
    exit 1
  fi
  pg_start
  trap pg_stop EXIT
fi
echo "== tests on PostgreSQL"
"$VENV_PY" -m pytest "$@"
