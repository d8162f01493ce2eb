from django.apps import AppConfig


class EmailsConfig(AppConfig):
    name = "emails"
    verbose_name = "Emails"

    def ready(self):
        # Register the system checks, the tracking-webhook receiver and the Celery tasks
        # (emails/delivery/dispatch.py publishes them by name, in every process).
        from emails import checks, signals, tasks  # noqa: F401
