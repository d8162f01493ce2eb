"""Shared by the migrations that alter emails_message (not a migration: the loader skips
modules whose name starts with "_")."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations


def wait_for_locks_briefly(apps, schema_editor):
    """Adding a column to emails_message takes its lock for a moment: never queue behind a
    long query for it (and block Logto's requests meanwhile) for more than a second; fail,
    and run migrate again."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET LOCAL lock_timeout = '1s'")


class AddIndexWithoutLock(AddIndexConcurrently):
    """CREATE INDEX CONCURRENTLY on PostgreSQL, so that accepts and deliveries go on while
    it is built (a plain CREATE INDEX blocks every write to emails_message for as long as it
    reads the table: seconds at 10 million rows); a plain index elsewhere (SQLite)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            # A concurrent build that failed (or was stopped) leaves an INVALID index of the
            # name behind: drop it and build again, so that migrate can simply be re-run.
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE c.relname = %s",
                    [self.index.name],
                )
                found = cursor.fetchone()
            if found and found[0]:
                return  # built by an earlier, interrupted run of this migration
            if found:
                schema_editor.execute(
                    f"DROP INDEX CONCURRENTLY {schema_editor.quote_name(self.index.name)}"
                )
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_forwards(
                self, app_label, schema_editor, from_state, to_state
            )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_backwards(
                self, app_label, schema_editor, from_state, to_state
            )
