from django.apps import AppConfig


class EmailsConfig(AppConfig):
    name = "emails"
    verbose_name = "Emails"

    def ready(self):
        # Register the system checks and the tracking-webhook receiver.
        from emails import checks, signals  # noqa: F401
