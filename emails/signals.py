from anymail.signals import tracking
from celery.signals import task_prerun, worker_process_init
from django.conf import settings
from django.db import close_old_connections
from django.db.backends.signals import connection_created
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from emails.content.scopes import scope_brands, sender_profiles
from emails.content.selectors import enabled_templates, sending_templates
from emails.delivery.deliver import provider_connection
from emails.delivery.tracking import tracking_event_record
from emails.models import Layout, ScopeBrand, SenderProfile, Template


@receiver([post_save, post_delete], sender=Template, dispatch_uid="emails.templates_changed")
@receiver([post_save, post_delete], sender=Layout, dispatch_uid="emails.layouts_changed")
def on_template_change(sender, **kwargs):
    enabled_templates.clear()
    sending_templates.clear()


@receiver([post_save, post_delete], sender=SenderProfile, dispatch_uid="emails.senders_changed")
def on_sender_change(sender, **kwargs):
    sender_profiles.clear()


@receiver([post_save, post_delete], sender=ScopeBrand, dispatch_uid="emails.brands_changed")
def on_scope_brand_change(sender, **kwargs):
    scope_brands.clear()


@receiver(tracking, dispatch_uid="emails.tracking_event")
def on_tracking_event(sender, event, esp_name, **kwargs):
    tracking_event_record(event, esp_name=esp_name)


@task_prerun.connect(dispatch_uid="emails.close_old_connections")
def before_task(**kwargs):
    """What Django does before each web request: drop connections past CONN_MAX_AGE or broken
    (CONN_HEALTH_CHECKS). Celery's own close-after-every-task is off (CELERY_DB_REUSE_MAX)."""
    if not getattr(kwargs.get("task").request, "is_eager", False):
        close_old_connections()


_in_worker_process = False


@worker_process_init.connect(dispatch_uid="emails.worker_process_init")
def on_worker_process_init(**kwargs):
    global _in_worker_process
    _in_worker_process = True
    # Build each HTTP provider's client now, not with the first email (boto3's SES client
    # takes about half a second to build: a fresh worker's first code would wait for it).
    provider_connection.warm()


@receiver(connection_created, dispatch_uid="emails.worker_session")
def on_connection_created(sender, connection, **kwargs):
    """Worker sessions commit without waiting for the WAL flush (synchronous_commit off): the
    claim and the outcome of each email no longer wait for the disk. A PostgreSQL crash can
    forget the last fraction of a second of such commits: a claim (the message is queued
    again) or an outcome (the sweeper re-queues it), so at worst an email goes out twice,
    which at-least-once delivery allows. Accepting (the web's INSERT) stays durable."""
    if (
        _in_worker_process
        and connection.vendor == "postgresql"
        and settings.EMAILS_WORKER_ASYNC_COMMIT
    ):
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")
