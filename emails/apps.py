from django.apps import AppConfig


class EmailsConfig(AppConfig):
    name = "emails"
    verbose_name = "Emails"

    def ready(self):
        # Register the system checks, the tracking-webhook receiver and the Celery tasks
        # (emails/delivery/dispatch.py publishes them by name, in every process).
        from django.conf import settings

        from emails import checks, metrics, signals, tasks  # noqa: F401

        # Every series at 0 from the start, so that the first failure shows in rate().
        metrics.start_at_zero(providers=list(settings.EMAIL_PROVIDERS))
