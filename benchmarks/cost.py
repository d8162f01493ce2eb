"""Database queries per accepted email: Logto's request through the real view (test client,
same settings as the benchmark server), counted by Django. The typical request, and the most
any request took (the one that refreshes the per-process template list)."""

import json
import os
import statistics
import uuid

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402


def main():
    client = Client(HTTP_AUTHORIZATION=os.environ["LOGTO_AUTHORIZATION"], HTTP_HOST="localhost")
    counts, statements = [], {}
    for index in range(20):
        body = {
            "to": f"cost-{uuid.uuid4().hex}@example.com",
            "type": "SignIn",
            "payload": {"code": f"{index:06d}", "locale": "en"},
        }
        with CaptureQueriesContext(connection) as queries:
            response = client.post(
                "/api/logto/email", json.dumps(body), content_type="application/json"
            )
        assert response.status_code == 200, response.content
        counts.append(len(queries))
        statements[len(queries)] = [query["sql"][:60] for query in queries]
    typical = statistics.mode(counts)
    print(json.dumps({"queries": typical, "max": max(counts), "statements": statements[typical]}))


if __name__ == "__main__":
    main()
