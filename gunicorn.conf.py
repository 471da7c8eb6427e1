"""gunicorn defaults for calsync; every value can be overridden on the command line or by env."""

import os

bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# The webhook only stores and answers; anything slow is a bug or a stuck database, not work to wait for.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
# No keep-alive by default: Calendly opens a new connection for each delivery, and a kept-alive one
# costs a second trip through gunicorn's poller and thread pool only to see the client close it (~3% of
# the web worker's instructions per acknowledgement). The answer says `Connection: close`, so a proxy in
# front never reuses a connection gunicorn is closing. A proxy that keeps upstream connections open
# may set GUNICORN_KEEPALIVE (seconds, below the proxy's own idle timeout).
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "0"))
accesslog = "-"
errorlog = "-"
# Masks OAuth codes in access lines; JSON lines like calsync's own unless CALSYNC_LOG_FORMAT=plain.
logger_class = "calsync.gunicorn_logging.GunicornLogger"
# Calendly's delivery carries a signature header; forwarded headers come from the proxy in front.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's control socket defaults to one path in $HOME: a second instance (a worker host, the
# benchmark, end-to-end tests) would fight over it, and the non-root container user has no home.
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "") == ""
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
