import os
import sys
from typing import NoReturn

from celery import Celery, signals
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

if "celery" in sys.argv[0] and "worker" in sys.argv[1:]:
    # `celery worker`: its processes keep their metrics in a folder of its own
    # (project/metrics_files.py), set before anything imports prometheus-client. Settings it
    # cannot read are refused below, in one line.
    from django.conf import settings as _settings

    from project.metrics_files import UnsafeFolder, start_role

    try:
        start_role("worker", _settings.EMAILS_METRICS_DIR)
    except ImproperlyConfigured:
        pass
    except UnsafeFolder as exc:
        print(f"Mailroom cannot start: {exc}.", file=sys.stderr, flush=True)
        raise SystemExit(1) from None

app = Celery("mailroom")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every worker relays new messages from the database to the queue (emails/delivery/relay.py).
from emails.delivery.relay import RelayStep  # noqa: E402

app.steps["worker"].add(RelayStep)


def _refuse(reason: str) -> NoReturn:
    # Celery logs and ignores a signal receiver's exceptions, but not SystemExit.
    print(f"Mailroom cannot start: {reason}", file=sys.stderr, flush=True)
    raise SystemExit(1)


@app.on_configure.connect
def refuse_to_start_with_bad_settings(sender=None, **kwargs):
    """`celery worker` and `celery beat` read Django's settings while parsing their options: a
    setting settings.py refuses (ImproperlyConfigured, naming the variable) is one line and
    exit status 1, not a traceback. (Django processes have read their settings already.)"""
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018  (loads settings.py)
    except ImproperlyConfigured as exc:
        _refuse(" ".join(str(exc).split()))


@signals.worker_init.connect
def refuse_to_start_without_a_provider(sender=None, **kwargs):
    """A worker whose email provider cannot send (the test behind `manage.py check`'s
    emails.E002, emails/delivery/provider_check.py) exits with one line and status 1 before it
    consumes a task, instead of failing every email. Beat sends no email: not checked."""
    from emails.delivery.provider_check import provider_problem

    if problem := provider_problem():
        _refuse(problem)
