# Sourced by the other scripts: make sure .venv exists and holds the pinned packages of "$1".
# Re-installs only when the requirements files changed (a stamp holds their hash).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQUIREMENTS="${1:-requirements.txt}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "calsync needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))." >&2
  exit 1
fi
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  echo "== creating the virtualenv in .venv"
  if ! "$PYTHON" -m venv "$ROOT/.venv" 2>/dev/null; then
    echo "python3 -m venv failed; on Debian/Ubuntu: sudo apt-get install python3-venv" >&2
    exit 1
  fi
fi
stamp="$ROOT/.venv/.calsync-$(basename "$REQUIREMENTS").sha256"
want="$(cat "$ROOT"/requirements*.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing $REQUIREMENTS into .venv"
  "$ROOT/.venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
  "$ROOT/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/$REQUIREMENTS"
  echo "$want" > "$stamp"
fi
VENV_PY="$ROOT/.venv/bin/python"
export VENV_PY ROOT
