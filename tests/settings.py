"""Test settings: the real settings, with a known signing key and tasks run in-process."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("CALENDLY_SIGNING_KEY", "qL4x9Zr2Tn8VbK1mWc7PdS3hJf6Ye0Ug5Ra-Xo2Ni_E")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")

from calsync.settings import *  # noqa: F403

Q_CLUSTER = {**Q_CLUSTER, "sync": True}  # noqa: F405
# Reconcilers are switched on per test; the foundation's tests drive the pipeline with fakes.
CALSYNC_RECONCILERS = []
CALSYNC_BOOKING_LOCK_WAIT = 0.5
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
# No collected static files in tests; whitenoise would only warn about the missing folder.
MIDDLEWARE = [m for m in MIDDLEWARE if "whitenoise" not in m]  # noqa: F405
