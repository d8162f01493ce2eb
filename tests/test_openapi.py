"""The management API is what its OpenAPI document says: schemathesis, run against a real
gunicorn (debug off, production's gunicorn config, PostgreSQL) with a superuser's token,
generates requests for every operation from /api/schema/ and checks every answer (`--checks
all`): no 500, every status and body as documented, every request the schema allows accepted
and every request it refuses refused.

schemathesis' own settings are in tests/schemathesis.toml; a failure prints its report, with
a curl line to replay each finding.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.authtoken.models import Token

from emails.models import Layout, Template
from tests.helpers import require_postgres
from tests.processes import database_url, free_port, gunicorn, running, service_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
# Fixed, so a failure in CI is the same failure on a laptop (`--seed` below).
SEED = 20


# What the API links to in no answer: collected, they only cost time (15-40 s of compression).
def seed_what_every_answer_needs() -> str:
    """A superuser's token, and layout 1 used by a template: the coverage phase tries the
    smallest id the schema allows (1), so `DELETE /api/v1/layouts/1/` meets the 409."""
    layout = Layout.objects.filter(pk=1).first() or Layout.objects.create(
        pk=1, name="Used", html="<div>{{ content }}</div>"
    )
    Template.objects.update_or_create(
        usage_type="Generic",
        locale="eo",
        defaults={"subject": "Hello", "html_body": "<p>Hello</p>", "layout": layout},
    )
    user = User.objects.create_superuser("openapi", "openapi@example.com", "unused")
    return Token.objects.create(user=user).key


def test_the_management_api_answers_as_its_openapi_document_says(tmp_path):
    require_postgres()
    if not SCHEMATHESIS.exists():
        pytest.fail(f"schemathesis is not installed in {SCHEMATHESIS.parent} (a dev dependency)")
    # Given a production-style server and a token that may do everything
    token = seed_what_every_answer_needs()
    env = service_env(DATABASE_URL=database_url(connection.settings_dict))
    port = free_port()
    with running(gunicorn(env, port, config="project/gunicorn.conf.py")) as (server,):
        # When schemathesis tries every operation
        result = subprocess.run(
            [
                str(SCHEMATHESIS),
                "--config-file",
                str(CONFIG),
                "--no-color",
                "run",
                f"http://127.0.0.1:{port}/api/schema/",
                "--header",
                f"Authorization: Token {token}",
                "--checks",
                "all",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                "60",
                "--seed",
                str(SEED),
                "--workers",
                "1",
                "--request-timeout",
                "30",
                "--generation-database",
                "none",
                "--report",
                "junit",
                "--report-dir",
                str(tmp_path / "report"),
            ],
            cwd=tmp_path,  # anything it writes stays in the test's temporary folder
            capture_output=True,
            text=True,
            timeout=600,
        )
        log = server.output()
    output = result.stdout + result.stderr
    # Then it finds nothing
    assert result.returncode == 0, output
    # every operation of the document (14 when this was written; new endpoints join in)
    selected = re.search(r"Selected: (\d+)/(\d+)", output)
    tested = re.search(r"Tested: (\d+)", output)
    assert selected and tested, output
    assert selected[1] == selected[2] == tested[1] and int(tested[1]) >= 14, output
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅\s+{phase}", output), f"{phase} did not run and pass:\n{output}"
    # and it met the refusal that was a 500: deleting a layout that a template uses
    assert 'DELETE /api/v1/layouts/1/ HTTP/1.1" 409' in log, log[-3000:]
