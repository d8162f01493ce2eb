import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("mailroom")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every worker relays new messages from the database to the queue (emails/delivery/relay.py).
from emails.delivery.relay import RelayStep  # noqa: E402

app.steps["worker"].add(RelayStep)
