"""Test settings: the real settings, with known secrets and tasks run in-process.

Values that tests depend on are set here, not taken from the environment, so that a developer's
shell or `.env` can never change what the tests see (or point them at a real database or API).
"""

import os

os.environ["CALSYNC_READ_DOTENV"] = "false"
os.environ.setdefault("SECRET_KEY", "test-only-secret-key")

from calsync.settings import *  # noqa: F403

CALENDLY_SIGNING_KEYS = ["qL4x9Zr2Tn8VbK1mWc7PdS3hJf6Ye0Ug5Ra-Xo2Ni_E"]
CALENDLY_ALLOW_UNSIGNED = False
SECURE_SSL_REDIRECT = False
Q_CLUSTER = {**Q_CLUSTER, "sync": True}  # noqa: F405
# The sandbox app (emulators, send_test_booking…) is installed only when wanted; its tests want it.
if "sandbox" not in INSTALLED_APPS:  # noqa: F405
    INSTALLED_APPS = [*INSTALLED_APPS, "sandbox"]  # noqa: F405
# Reconcilers are switched on per test with the `settings` fixture.
CALSYNC_RECONCILERS = []
CALSYNC_BOOKING_LOCK_WAIT = 0.5
# A test's database lives in one connection's transaction, invisible to a thread's own connection: read-ahead
# runs inline here (tests/bookings/test_processing.py covers the threads; the end-to-end tests run them for real).
CALSYNC_CONCURRENT_STEPS = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
# No collected static files in tests; whitenoise would only warn about the missing folder.
MIDDLEWARE = [m for m in MIDDLEWARE if "whitenoise" not in m]  # noqa: F405
