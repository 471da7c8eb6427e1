"""calsync's SQLite backend: Django's, with a fair cross-process write lock (see `writelock`)."""
