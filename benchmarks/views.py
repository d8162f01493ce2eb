"""The two baselines served beside Mailroom's endpoint, by the same Django and gunicorn:

- ``insert_only``: parse the JSON body and do one INSERT (autocommit: one commit). The floor
  any durable accept must pay.
- ``parse_only``: parse the JSON body and answer. The ceiling without a database.
"""

import json
import uuid

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS bench_insert "
    "(id uuid PRIMARY KEY, body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
)


@csrf_exempt
def insert_only(request):
    body = json.loads(request.body)
    row_id = uuid.uuid4()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_insert (id, body) VALUES (%s, %s)", [row_id, json.dumps(body)]
        )
    return JsonResponse({"id": str(row_id), "status": "queued"})


@csrf_exempt
def parse_only(request):
    json.loads(request.body)
    return JsonResponse({"id": str(uuid.uuid4()), "status": "queued"})
