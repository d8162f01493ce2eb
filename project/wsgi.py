"""The web's entry point: `gunicorn -c project/gunicorn.conf.py project.wsgi`.

The web refuses to start, with one line naming the setting, when its configuration is wrong
(settings.py raises ImproperlyConfigured) or the email provider cannot send
(emails/delivery/provider_check.py, the same test as `manage.py check`'s emails.E002): better
than answering Logto 200 for emails no worker can send. It refuses with DEBUG on too, as
`manage.py runserver` does; the console backend never fails the test.
"""

import os
import sys
from typing import NoReturn

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

# gunicorn's "App failed to load": its arbiter stops instead of booting worker after worker
# that would fail the same way (any other non-zero exit status makes it boot another).
CANNOT_START = 4


def _refuse(reason: str) -> NoReturn:
    print(f"Mailroom cannot start: {reason}", file=sys.stderr, flush=True)
    raise SystemExit(CANNOT_START)


try:
    application = get_wsgi_application()
except ImproperlyConfigured as exc:
    _refuse(" ".join(str(exc).split()))

from emails.delivery.provider_check import provider_problem  # noqa: E402  (after django.setup)

if problem := provider_problem():
    _refuse(problem)
