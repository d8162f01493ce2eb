"""The baselines served beside Mailroom's endpoint, by the same Django and gunicorn:

- ``insert_only``: parse the JSON body and do one INSERT (autocommit: one commit). The floor
  any durable accept must pay.
- ``parse_only``: parse the JSON body and answer. The ceiling without a database.
- ``NaiveConnector`` and ``PostOfficeConnector`` (DRF views, made on first use: this module
  is also imported, for CREATE_TABLE, where Django is not set up): the alternatives
  benchmarks/compare.py measures Mailroom against.
"""

import functools
import json
import uuid

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
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


# --- The alternatives of benchmarks/compare.py ---------------------------------------------
# Both render Mailroom's shipped SignIn email in English and answer Logto's call.


@functools.cache
def shipped_sign_in() -> tuple[dict, dict]:
    """(template fields, layout fields) of the shipped SignIn email in English."""
    from emails.content.defaults import default_layout, default_templates

    template = next(
        fields
        for fields in default_templates()
        if (fields["usage_type"], fields["locale"]) == ("SignIn", "en")
    )
    return template, default_layout()


POST_OFFICE_TEMPLATE = "mailroom-sign-in-en"


def post_office_template():
    """post_office's EmailTemplate holding the shipped SignIn email, made once before the
    benchmark, so that post_office sends the bytes Mailroom sends. post_office has no
    layouts: the template's HTML is the layout with the body in its place, its CSS inlined
    once by Mailroom's inliner (post_office inlines nothing) and the layout's subject and
    preheader written in; its text is the layout's text with the text body in place."""
    from post_office.models import EmailTemplate

    from emails.content.rendering.inlining import inlined_source

    template, layout = shipped_sign_in()
    html = inlined_source(layout["html"], template["html_body"]) or layout["html"].replace(
        "{{ content }}", template["html_body"]
    )
    html = html.replace("{{ subject }}", template["subject"]).replace(
        "{{ preheader }}", template["preheader"]
    )
    found, _ = EmailTemplate.objects.update_or_create(
        name=POST_OFFICE_TEMPLATE,
        language="",
        defaults={
            "subject": template["subject"],
            "html_content": html,
            "content": layout["text"].replace("{{ content }}", template["text_body"]),
        },
    )
    return found


@functools.cache
def _connectors() -> dict:
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from emails.intake.api import LogtoAuthorization

    class NaiveConnector(APIView):
        """What an afternoon gives: the same bearer token check, the email rendered by
        Mailroom's own code, sent through the configured EMAIL_BACKEND (anymail's Postmark
        backend) inside the request; 200 once the provider took it, 502 when sending raised."""

        authentication_classes = [LogtoAuthorization]
        permission_classes = []
        schema = None

        def post(self, request):
            from emails.content.composer import compose
            from emails.models import Layout

            template, layout = shipped_sign_in()
            rendered = compose(
                subject=template["subject"],
                html=template["html_body"],
                text=template["text_body"],
                preheader=template["preheader"],
                layout=Layout(name=layout["name"], html=layout["html"], text=layout["text"]),
                payload=request.data["payload"],
                locale="en",
            )
            email = EmailMultiAlternatives(
                subject=rendered.subject,
                body=rendered.text,
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[request.data["to"]],
            )
            email.attach_alternative(rendered.html, "text/html")
            try:
                email.send()
            except Exception as exc:  # any failure to send: Logto's 502
                return Response({"message": f"Sending failed: {type(exc).__name__}."}, status=502)
            return Response({"status": "sent"})

    class PostOfficeConnector(APIView):
        """django-post_office's documented path: mail.send() renders the template and stores
        the Email; with CELERY_ENABLED, post_office publishes its send_queued_mail task once
        that commits, and a Celery worker sends it. 200 once the Email is stored."""

        authentication_classes = [LogtoAuthorization]
        permission_classes = []
        schema = None

        def post(self, request):
            from post_office import mail

            from emails.content.brand import brand_current
            from emails.content.rendering.context import email_context

            # Mailroom's template context (payload, brand, lang, ...), so that the same
            # template gives the same email.
            context = email_context(
                request.data["payload"],
                locale="en",
                brand=brand_current(),
                expires_in_minutes=max(1, round(settings.EMAILS_CODE_TTL / 60)),
            )
            email = mail.send(
                recipients=[request.data["to"]],
                sender=settings.DEFAULT_FROM_EMAIL,
                template=POST_OFFICE_TEMPLATE,  # by name, as documented (post_office caches it)
                context=context,
            )
            return Response({"id": email.id, "status": "queued"})

    return {"NaiveConnector": NaiveConnector, "PostOfficeConnector": PostOfficeConnector}


def __getattr__(name: str):
    # NaiveConnector, PostOfficeConnector (PEP 562: made when the URLconf first asks).
    connectors = _connectors() if name in ("NaiveConnector", "PostOfficeConnector") else {}
    if name in connectors:
        return connectors[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
