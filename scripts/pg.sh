# Sourced: `pg_start` starts a throwaway PostgreSQL server on loopback and exports DATABASE_URL;
# `pg_stop` stops it and removes its data. Uses Debian's `postgresql` package (CI installs it).
# initdb refuses to run as root, so as root the server runs as the `postgres` user.

pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

pg_free_port() {
  "${VENV_PY:-python3}" - <<'PY'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

pg_start() {
  local bindir port as_user=()
  bindir="$(pg_bindir)" || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; return 1; }
  PG_TMP="$(mktemp -d /tmp/calsync-pg.XXXXXX)"
  port="$(pg_free_port)"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    chown postgres "$PG_TMP"
    as_user=(runuser -u postgres --)
  fi
  "${as_user[@]}" "$bindir/initdb" -D "$PG_TMP/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$PG_TMP/initdb.log" 2>&1 \
    || { cat "$PG_TMP/initdb.log" >&2; return 1; }
  "${as_user[@]}" "$bindir/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_TMP -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null || { cat "$PG_TMP/server.log" >&2; return 1; }
  PG_BINDIR="$bindir"
  PG_AS_USER="${as_user[*]}"
  export PG_TMP PG_BINDIR PG_AS_USER
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/calsync"
  "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres calsync
  echo "== PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (throwaway, in $PG_TMP)"
}

pg_stop() {
  [ -n "${PG_TMP:-}" ] || return 0
  # shellcheck disable=SC2086
  $PG_AS_USER "$PG_BINDIR/pg_ctl" -D "$PG_TMP/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_TMP"
  unset PG_TMP
}
