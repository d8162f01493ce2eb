from anymail.signals import tracking
from django.dispatch import receiver

from emails.services import tracking_event_record


@receiver(tracking, dispatch_uid="emails.tracking_event")
def on_tracking_event(sender, event, esp_name, **kwargs):
    tracking_event_record(event, esp_name=esp_name)
