#!/usr/bin/env bash
# Sets up and runs calsync on this machine: the web server (gunicorn) and the task worker (qcluster)
# together, on the embedded default (a SQLite file and django-q2's ORM broker) unless the environment
# or .env says otherwise. Stop with Ctrl-C.
#   bash scripts/run.sh               # http://127.0.0.1:8000/admin/ and POST /webhooks/calendly/
#   DEBUG=false BIND=0.0.0.0:8000 bash scripts/run.sh   # refused while DEBUG is on: its error pages leak
set -euo pipefail
source "$(dirname "$0")/_venv.sh" requirements.txt
cd "$ROOT"

source scripts/_local_safety.sh
if [ ! -f .env ]; then
  write_local_env "$VENV_PY"   # first start: fresh random secrets, mode 0600. Never commit .env.
elif [ -n "$(find .env -perm /077)" ]; then
  chmod 600 .env && echo "== .env holds secrets: made it readable by you only (mode 0600)"
fi
BIND="${BIND:-127.0.0.1:8000}"
debug=$("$VENV_PY" -c 'import os; os.environ.setdefault("DJANGO_SETTINGS_MODULE", "calsync.settings")
import django; django.setup(); from django.conf import settings; print(settings.DEBUG)')
refuse_debug_on_network "$debug" "$BIND" || exit 1

"$VENV_PY" manage.py migrate --noinput -v 0
"$VENV_PY" manage.py createcachetable
"$VENV_PY" manage.py collectstatic --noinput -v 0
"$VENV_PY" manage.py check

pids=()
stop_all() { kill -TERM "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; }
trap stop_all INT TERM EXIT

# No Kommo and no Zoom credentials (environment or .env): run the sandbox, local emulators of both
# with a demo CRM, so a newcomer sees a booking land in a deal and a meeting without any account.
configured=$("$VENV_PY" - <<'PY'
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "calsync.settings")
import django
django.setup()
from django.conf import settings
print("yes" if (settings.KOMMO_BASE_URL or settings.ZOOM_CLIENT_ID) else "no")
PY
)
if [ "$configured" = "no" ] && [ "${CALSYNC_SANDBOX:-}" != "false" ]; then
  rm -f var/sandbox.env
  # var/emulators.json keeps the emulators' data across restarts: calsync's database holds the ids they
  # handed out, so they must never start over (delete it only together with var/calsync.sqlite3).
  # The sandbox app (its commands) is installed only with CALSYNC_SANDBOX; var/sandbox.env sets it for
  # everything started below (web, worker, manage.py).
  CALSYNC_SANDBOX=true "$VENV_PY" manage.py run_emulators --env-file var/sandbox.env --state-file var/emulators.json \
    > var/emulators.log 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -s var/sandbox.env ] && break; kill -0 "${pids[-1]}" 2>/dev/null || { cat var/emulators.log; exit 1; }; sleep 0.1; done
  set -a; source var/sandbox.env; set +a   # exported values win over .env
  echo "== SANDBOX: no Kommo/Zoom credentials are configured, so calsync talks to LOCAL EMULATORS (nothing real)"
  "$VENV_PY" manage.py sandbox_admin
  echo "   send a sample booking: CALSYNC_SANDBOX=true .venv/bin/python manage.py send_test_booking"
  echo "     then move it a day later with --reschedule, or cancel it with --cancel;"
  echo "     --as several-deals books for a contact with two open deals (review queue), --as unknown for a new lead"
  echo "   a deal as a salesperson sees it: http://127.0.0.1:8010/leads/detail/18734521"
  echo "   what the emulators hold: http://127.0.0.1:8010/__emulator__/state and http://127.0.0.1:8011/__emulator__/state"
  echo "   (kept in var/emulators.json across restarts)"
  echo "   set KOMMO_* / ZOOM_* (see README) to use your real accounts instead"
else
  echo "   no admin user yet? .venv/bin/python manage.py createsuperuser"
fi
echo "== calsync on http://$BIND  (admin: /admin/, webhook: POST /webhooks/calendly/)"

"$VENV_PY" manage.py qcluster &
pids+=($!)
"$VENV_PY" -m gunicorn calsync.wsgi --config gunicorn.conf.py --bind "$BIND" &
pids+=($!)
# If any of them dies, stop the rest: a web server without a worker would only pile up events.
wait -n "${pids[@]}"
