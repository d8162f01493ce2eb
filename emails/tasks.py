import random

from celery import shared_task

from emails.services import TransientDeliveryError, message_deliver

# Five tries over about two and a half minutes: well inside the ten minutes a Logto code lives.
MAX_RETRIES = 4
BASE_DELAY_SECONDS = 5


def retry_delay(retries: int) -> float:
    """Exponential backoff with full jitter: 5 s, 10 s, 20 s, 40 s ceilings."""
    return random.uniform(BASE_DELAY_SECONDS / 2, BASE_DELAY_SECONDS * 2**retries)  # noqa: S311


@shared_task(bind=True, max_retries=MAX_RETRIES, ignore_result=True)
def deliver_message(self, message_id: str) -> None:
    """Deliver one stored message. The service does the work; the task owns only the retry
    decision: transient provider errors are retried with backoff, the last try is final."""
    try:
        message_deliver(message_id=message_id, final_attempt=self.request.retries >= MAX_RETRIES)
    except TransientDeliveryError as exc:
        raise self.retry(exc=exc, countdown=retry_delay(self.request.retries)) from exc
