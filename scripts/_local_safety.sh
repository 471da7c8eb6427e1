# Sourced by run.sh: the local .env holds secrets, and DEBUG pages must not face a network.

# write_local_env PYTHON: a first-start .env with fresh random secrets, readable by its owner only (0600).
write_local_env() {
  (
    umask 077
    "$1" - <<'PY'
import os
import secrets

key = secrets.token_urlsafe(32)
# O_EXCL: never overwrite an existing .env; mode 0600 from the start, not chmod-ed afterwards.
fd = os.open(".env", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
with os.fdopen(fd, "w") as f:
    f.write(f"""# Written by scripts/run.sh for local use. See README.md "Configuration" for every setting.
# It holds secrets: keep it private (mode 0600) and never commit it.
DEBUG=true
SECRET_KEY={secrets.token_urlsafe(50)}
# Give Calendly this same key when you create the webhook subscription (manage.py calendly_webhook subscribe).
CALENDLY_SIGNING_KEY={key}
""")
print("== wrote .env (mode 0600) with a new SECRET_KEY and CALENDLY_SIGNING_KEY")
PY
  )
}

# is_loopback_bind BIND: true for 127.x.x.x, localhost, [::1] (with a port) and unix sockets.
is_loopback_bind() {
  local bind="$1" host
  case "$bind" in
    unix:*) return 0 ;;
    \[*\]*) host="${bind%%]*}"; host="${host#[}" ;;
    *) host="${bind%:*}" ;;
  esac
  case "$host" in
    127.*|localhost|::1) return 0 ;;
    *) return 1 ;;
  esac
}

# refuse_debug_on_network DEBUG BIND: exit unless DEBUG is off or BIND is a loopback address.
# With DEBUG on, Django's error pages show settings and code to whoever reaches the port.
refuse_debug_on_network() {
  local debug="$1" bind="$2"
  if [ "$debug" = "True" ] && ! is_loopback_bind "$bind"; then
    echo "!! REFUSING to start: DEBUG is on and BIND=$bind is reachable from other machines." >&2
    echo "!! Set DEBUG=false (in .env or the environment) before binding to a network address," >&2
    echo "!! or bind to 127.0.0.1." >&2
    return 1
  fi
}
