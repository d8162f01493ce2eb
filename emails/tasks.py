"""Celery tasks: each takes a primary key (or nothing), calls one service, and owns only the
decision to schedule a retry."""

from celery import shared_task

from emails.services import message_deliver, message_publish, messages_purge, messages_sweep


@shared_task(ignore_result=True)
def deliver_message(message_id: str) -> None:
    outcome = message_deliver(message_id=message_id)
    if outcome is not None and outcome.retry_in is not None:
        # Published, not Task.retry(): if the broker is down now, the message is queued in
        # the database with its next_attempt_at and the sweeper publishes it later.
        message_publish(message_id=message_id, countdown=outcome.retry_in)


@shared_task(ignore_result=True)
def sweep_messages() -> dict:
    return vars(messages_sweep())


@shared_task(ignore_result=True)
def purge_old_messages() -> int:
    return messages_purge()
