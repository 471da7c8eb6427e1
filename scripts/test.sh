#!/usr/bin/env bash
# Sets up everything and runs the whole test suite: lint, then pytest on SQLite, then on PostgreSQL.
#   bash scripts/test.sh              # everything
#   bash scripts/test.sh -k webhook   # extra arguments go to pytest
# PostgreSQL: uses $DATABASE_URL if it is a postgres:// URL; otherwise starts a throwaway server on
# loopback from Debian's `postgresql` package. CALSYNC_TEST_POSTGRES=skip runs SQLite only.
set -euo pipefail
source "$(dirname "$0")/_venv.sh" requirements-dev.txt
cd "$ROOT"

echo "== ruff"
"$VENV_PY" -m ruff check .
"$VENV_PY" -m ruff format --check .

echo "== tests on SQLite"
# End-to-end tests start real processes against PostgreSQL: they run in the PostgreSQL pass only.
env -u DATABASE_URL "$VENV_PY" -m pytest -m "not e2e" "$@"

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
