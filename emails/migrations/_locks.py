"""Shared by the migrations that alter emails_message (not a migration: the loader skips
modules whose name starts with "_")."""


def wait_for_locks_briefly(apps, schema_editor):
    """Adding a column to emails_message takes its lock for a moment: never queue behind a
    long query for it (and block Logto's requests meanwhile) for more than a second; fail,
    and run migrate again."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET LOCAL lock_timeout = '1s'")
