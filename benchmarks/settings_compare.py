"""For benchmarks/compare.py's two alternatives to Mailroom (served from /bench/naive and
/bench/post-office, benchmarks/views.py):

- /bench/ answers plain HTTP as Logto's endpoint does (project/settings.py exempts that from
  the HTTPS redirect, a 301 Logto would not follow);
- django-post_office installed beside Mailroom (benchmarks.settings_post_office), with its
  documented Celery integration: each mail.send() publishes post_office's send_queued_mail
  task once the Email is committed, and a Celery worker (`celery -A project worker`, whose
  autodiscovery finds post_office.tasks) sends the queued Emails through anymail's Postmark
  backend. Everything else is post_office's defaults (5 sending threads per task, batches of
  100, no retries, a lock file so that one task sends at a time).

The naive connector's request path uses none of post_office.
"""

from benchmarks.settings_post_office import *  # noqa: F403
from benchmarks.settings_post_office import SECURE_REDIRECT_EXEMPT

SECURE_REDIRECT_EXEMPT = [*SECURE_REDIRECT_EXEMPT, r"^bench/"]

POST_OFFICE = {
    "CELERY_ENABLED": True,
    "BACKENDS": {"default": "anymail.backends.postmark.EmailBackend"},
    # post_office's lock file lives in the temporary folder: a name of our own there.
    "LOCK_FILE_NAME": "mailroom-compare-post-office",
}

# post_office's send_queued_mail loops until its queue is empty: Mailroom's 45 s task limit
# would cut it off, and with its one-sender lock nothing would send the rest. A post_office
# deployment has Celery's default, no limit; an hour here.
CELERY_TASK_SOFT_TIME_LIMIT = 3600
CELERY_TASK_TIME_LIMIT = 3600
