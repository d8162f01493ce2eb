"""Production settings plus the two baseline endpoints, for the benchmark server only."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-secret-key-" + "x" * 24)

from project.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.urls"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
