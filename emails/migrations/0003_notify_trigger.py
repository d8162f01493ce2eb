from django.db import migrations

CREATE = """
CREATE FUNCTION emails_message_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mailroom_queued', '');
    RETURN NULL;
END $$;
CREATE TRIGGER emails_message_notify AFTER INSERT ON emails_message
    FOR EACH ROW EXECUTE FUNCTION emails_message_notify();
"""
DROP = """
DROP TRIGGER IF EXISTS emails_message_notify ON emails_message;
DROP FUNCTION IF EXISTS emails_message_notify();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    """PostgreSQL tells listening workers when messages are stored (emails/delivery/relay.py), at
    commit. Per row, so an INSERT that stores nothing (a rate-limited request) wakes no one;
    the notifications of one transaction are one (same channel, same payload)."""

    dependencies = [("emails", "0002_starter_templates")]

    operations = [migrations.RunPython(create, drop)]
