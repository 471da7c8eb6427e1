"""WSGI entry point: `gunicorn calsync.wsgi`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "calsync.settings")

application = get_wsgi_application()
