"""A database that refuses, for the tests of what Logto hears and what the log says then."""

from contextlib import contextmanager

from django.db import connection


@contextmanager
def database_refusing(*, password: str = ""):
    """The connection points at a closed port (SQLite: a file that cannot be opened): a real
    failed connection, not a mock. Needs ``django_db(transaction=True)``; the connection's
    settings are restored for pytest-django afterwards."""
    original = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "postgresql":
        connection.settings_dict.update(
            HOST="127.0.0.1", PORT="1", PASSWORD=password, OPTIONS={"connect_timeout": 1}
        )
    else:
        connection.settings_dict.update(NAME="/nonexistent/dir/mailroom.sqlite3", PASSWORD=password)
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(original)
