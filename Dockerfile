# One image for the web server (default command) and the worker:
#   docker run … calsync                              # gunicorn on :8000
#   docker run … calsync python manage.py qcluster    # the task worker
#   docker run … calsync python manage.py migrate     # once per release, before the others
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CALSYNC_READ_DOTENV=false

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are collected at build time; whitenoise serves them. The key is only for this step.
RUN SECRET_KEY=build-only-not-secret python manage.py collectstatic --noinput -v 0 \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin calsync \
 && mkdir -p /app/var && chown calsync /app/var

USER calsync
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["gunicorn", "calsync.wsgi", "--config", "gunicorn.conf.py"]
