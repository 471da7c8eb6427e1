#!/usr/bin/env bash
# Runs the benchmark (bench/run.py) against a throwaway PostgreSQL server; writes docs/benchmarks.md.
#   bash bench/run.sh [--quick]
set -euo pipefail
source "$(dirname "$0")/../scripts/_venv.sh" requirements-dev.txt
cd "$ROOT"
source "$ROOT/scripts/pg.sh"
if [[ "${DATABASE_URL:-}" != postgres* ]]; then
  pg_start
  trap pg_stop EXIT
fi
"$VENV_PY" bench/run.py "$@"
