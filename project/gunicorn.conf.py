# gunicorn settings for Mailroom: `gunicorn -c project/gunicorn.conf.py project.wsgi`.
# Options on the command line (or in GUNICORN_CMD_ARGS) still override every value here.
import os
import sys

from project.metrics_files import DEFAULT_DIRECTORY, UnsafeFolder, start_role


def _cores() -> int:
    # The cores this process may run on (a container's cpuset), not the host's.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# Behind the TLS reverse proxy on the same host (README, "Production"): loopback only.
# MAILROOM_BIND=0.0.0.0:8000 when the proxy runs elsewhere (another container); a comma
# separates several addresses.
bind = os.environ.get("MAILROOM_BIND", "127.0.0.1:8000").split(",")

# gthread, with each request's head read by the event loop (project/gunicorn_worker.py): a
# client sending its headers slowly holds no thread, so it cannot stall Logto's requests.
worker_class = "project.gunicorn_worker.HeadBufferingWorker"
# gunicorn's own WEB_CONCURRENCY, else its rule of thumb (2 x cores + 1) up to 8. Each thread
# keeps one PostgreSQL connection open (DATABASE_CONN_MAX_AGE): workers x threads (at most
# 32 by default) plus a Celery worker's processes (at most 16) and its relay stay under
# PostgreSQL's default max_connections of 100 for one host; more hosts: PgBouncer (README).
workers = int(os.environ.get("WEB_CONCURRENCY") or min(2 * _cores() + 1, 8))
threads = int(os.environ.get("MAILROOM_THREADS") or 4)

# A request that runs longer than this is not ended by gthread (its event loop keeps the
# worker alive); this is how long the arbiter waits for a worker that stopped responding.
timeout = 30
# Restarts and stops wait this long for requests under way; Logto's take milliseconds.
graceful_timeout = 20
# Longer than the idle timeout of Node's HTTP agents (5 s) that Logto's connector uses, so
# Mailroom never closes a kept-alive connection just as Logto sends on it (a reset Logto
# would show its user). Idle connections wait in the event loop and hold no thread.
keepalive = 15
# gunicorn's defaults, written out: the request line (preview links are ~150 bytes), the
# number and size of header fields. A head over 64 KiB in all is refused (431) by the worker.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# Access log to stdout, the error log to stderr. No query string (%(U)s is the path only:
# an admin search is an email address), no referrer and no user name (the webhook's basic
# auth); preview tokens in the path are written as /preview/<token>/ by the logger below.
accesslog = "-"
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'
errorlog = "-"

# Preview links carry their token in the path: the access and error logs write it as
# /preview/<token>/ (project/logfilters.py).
logger_class = "project.logfilters.GunicornLogger"


def on_starting(server):
    # The workers keep their metrics in a folder of this arbiter's (project/metrics_files.py).
    try:
        start_role("web", os.environ.get("EMAILS_METRICS_DIR") or DEFAULT_DIRECTORY)
    except UnsafeFolder as exc:
        print(f"Mailroom cannot start: {exc}.", file=sys.stderr, flush=True)
        raise SystemExit(4) from None
    _check_the_app()


def _check_the_app():
    """Mailroom's start-up check (project/wsgi.py: settings and the email provider) once, in
    a child process, before the arbiter binds or forks: a misconfigured provider stops gunicorn
    with its one line, instead of every worker failing and gunicorn adding a traceback of its
    own. (A child, so that the arbiter itself never imports the app: a HUP still loads new
    code into new workers.)"""
    import subprocess
    import sys

    check = subprocess.run(
        [sys.executable, "-c", "import project.wsgi"], capture_output=True, text=True
    )
    if check.returncode != 0:
        lines = check.stderr.strip().splitlines()
        refusal = [line for line in lines if line.startswith("Mailroom cannot start:")]
        print((refusal or lines or ["Mailroom cannot start"])[-1], file=sys.stderr, flush=True)
        raise SystemExit(4)
