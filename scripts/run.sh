#!/usr/bin/env bash
# Sets up and runs calsync on this machine: the web server (gunicorn) and the task worker (qcluster)
# together, on the embedded default (a SQLite file and django-q2's ORM broker) unless the environment
# or .env says otherwise. Stop with Ctrl-C.
#   bash scripts/run.sh               # http://127.0.0.1:8000/admin/ and POST /webhooks/calendly/
#   BIND=0.0.0.0:8000 bash scripts/run.sh
set -euo pipefail
source "$(dirname "$0")/_venv.sh" requirements.txt
cd "$ROOT"

if [ ! -f .env ]; then
  # First start: a local configuration with fresh random secrets. Never commit .env.
  "$VENV_PY" - <<'PY'
import secrets
key = secrets.token_urlsafe(32)
with open(".env", "w") as f:
    f.write(f"""# Written by scripts/run.sh for local use. See README.md "Configuration" for every setting.
DEBUG=true
SECRET_KEY={secrets.token_urlsafe(50)}
# Give Calendly this same key when you create the webhook subscription (manage.py calendly_webhook subscribe).
CALENDLY_SIGNING_KEY={key}
""")
print("== wrote .env with a new SECRET_KEY and CALENDLY_SIGNING_KEY")
PY
fi

"$VENV_PY" manage.py migrate --noinput -v 0
"$VENV_PY" manage.py createcachetable
"$VENV_PY" manage.py collectstatic --noinput -v 0
"$VENV_PY" manage.py check

BIND="${BIND:-127.0.0.1:8000}"
echo "== calsync on http://$BIND  (admin: /admin/, webhook: POST /webhooks/calendly/)"
echo "   no admin user yet? .venv/bin/python manage.py createsuperuser"

"$VENV_PY" manage.py qcluster &
worker=$!
"$VENV_PY" -m gunicorn calsync.wsgi --config gunicorn.conf.py --bind "$BIND" &
web=$!
trap 'kill -TERM $worker $web 2>/dev/null; wait $worker $web 2>/dev/null' INT TERM EXIT
# If either process dies, stop the other: a web server without a worker would only pile up events.
wait -n $worker $web
