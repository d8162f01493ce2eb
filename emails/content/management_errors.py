"""How the management API says no: one error shape for every refusal, and the OpenAPI
description of it on every operation.

Every error answer is ``{"message": str, "field"?: str, "problems"?: [Problem]}``: one
sentence, the field when one field is at fault (as Logto's endpoint answers), and for 400 and
422 every problem with its field and, for template errors, its line. The status says whose
turn it is:

- 400: the request does not match the OpenAPI schema (a wrong type, a missing field, an
  empty subject, a body that is not JSON). A request the schema allows is never a 400.
- 401 / 403: no valid token / the token's user lacks the model permission.
- 404: no object with the id in the path.
- 409: conflicts with what is saved: a unique field taken, or a delete of something that
  others still use (``on_delete=PROTECT``), with how many.
- 415: the body is not ``application/json``.
- 422: well-formed, but not an email Mailroom can send: what JSON Schema cannot say (template
  syntax, the variables Logto sends for the usage type, a layout's ``{{ content }}``, a
  sender, an id of a template or layout that does not exist); for a sender profile or brand,
  no application or organization, a from address outside EMAILS_ALLOWED_FROM_DOMAINS, a
  support link that is not one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import models
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler


class ProblemSerializer(serializers.Serializer):
    """One problem: the field it is in (dotted, as in the request), its line in that field
    when it is a template error, and what is wrong."""

    field = serializers.CharField(allow_null=True)
    line = serializers.IntegerField(allow_null=True)
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """Every error answer of the management API."""

    message = serializers.CharField(help_text="One sentence; the first problem when several.")
    field = serializers.CharField(
        required=False, help_text="The field at fault, when it is one field."
    )
    problems = ProblemSerializer(
        many=True, required=False, help_text="400 and 422: every problem, in request order."
    )


class Unprocessable(exceptions.APIException):
    """422: the request matches the schema, but what it describes cannot be saved or
    rendered. ``problems`` are ``(field, message, line)`` triples."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The request cannot be processed."

    def __init__(self, problems: Iterable[tuple[str | None, str, int | None]]):
        self.problems = [
            {"field": field, "line": line, "message": message} for field, message, line in problems
        ]
        super().__init__(_summary(self.problems))


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with what is saved."

    def __init__(self, message: str, *, field: str | None = None):
        self.field = field
        super().__init__(message)


def exception_handler(exc, context):
    """DRF's exceptions, and a delete of what others still use, in the one error shape.
    Anything else is left to Django (a 500)."""
    if isinstance(exc, ProtectedError | RestrictedError):
        exc = Conflict(_still_used(context, exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        problems = list(_flatten(exc.detail))
        response.data = _body(_summary(problems), problems)
    elif isinstance(exc, Unprocessable):
        response.data = _body(str(exc.detail), exc.problems)
    elif isinstance(exc, Conflict):
        response.data = {"message": str(exc.detail), **({"field": exc.field} if exc.field else {})}
    else:
        response.data = {"message": str(exc.detail)}
    return response


def _body(message: str, problems: list[dict]) -> dict:
    fields = {problem["field"] for problem in problems}
    one = fields.pop() if len(fields) == 1 else None
    return {"message": message, **({"field": one} if one else {}), "problems": problems}


def _summary(problems: list[dict]) -> str:
    if not problems:
        return "The request is not valid."
    first = problems[0]
    where = ", ".join(
        part
        for part in (first["field"], f"line {first['line']}" if first["line"] else None)
        if part
    )
    text = f"{where}: {first['message']}" if where else first["message"]
    more = len(problems) - 1
    return text if not more else f"{text} (and {more} more in problems)"


def _flatten(detail: Any, path: str = ""):
    """DRF's nested error detail as problems with dotted field names."""
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            if key == api_settings.NON_FIELD_ERRORS_KEY:
                yield from _flatten(value, path)
            else:
                yield from _flatten(value, f"{path}.{key}" if path else str(key))
    elif isinstance(detail, list | tuple):
        for item in detail:
            yield from _flatten(item, path)
    else:
        yield {"field": path or None, "line": None, "message": str(detail)}


def _still_used(context, exc: ProtectedError | RestrictedError) -> str:
    users = exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects
    counts: dict[type[models.Model], int] = {}
    for user in users:
        counts[type(user)] = counts.get(type(user), 0) + 1
    used_by = " and ".join(
        f"{count} {model._meta.verbose_name if count == 1 else model._meta.verbose_name_plural}"
        for model, count in counts.items()
    )
    model = getattr(getattr(context.get("view"), "queryset", None), "model", None)
    what = f"This {model._meta.verbose_name}" if model is not None else "It"
    return f"{what} is used by {used_by}: point them elsewhere before deleting it."


# --- The OpenAPI side -----------------------------------------------------------------------

ERROR_DESCRIPTIONS = {
    400: "The request does not match this schema, or its body is not JSON. A request the "
    "schema allows is never refused with 400.",
    401: "No token, or not a valid one: send `Authorization: Token <key>`.",
    403: "The token's user lacks the model permission this needs.",
    404: "No object with this id.",
    409: "Conflicts with what is saved.",
    415: "The body is not `application/json`.",
    422: "Well-formed, but not an email Mailroom can send: a template error (with its line), "
    "a variable Logto does not send for the usage type, a required `{{ code }}` or "
    "`{{ link }}` missing, a layout without `{{ content }}`, a sender that is not an address "
    "(or not at a domain of EMAILS_ALLOWED_FROM_DOMAINS), or the id of a template or layout "
    "that does not exist. Every problem is in `problems`.",
}


def protecting_relations(model: type[models.Model]) -> list[str]:
    """The models whose rows keep a row of ``model`` from being deleted."""
    names = []
    for relation in model._meta.related_objects:
        related = relation.related_model
        if getattr(relation, "on_delete", None) in (models.PROTECT, models.RESTRICT):
            names.append(
                str(related._meta.verbose_name_plural) if isinstance(related, type) else related
            )
    return names


class ManagementSchema(AutoSchema):
    """drf-spectacular's schema, plus the error answers each operation can give, all in the
    one error shape, and responses that list every field they always carry.

    An operation answers 401 and 403; 404 with an id in its path; 400 and 415 with a body
    (400 also with query parameters); 409 for a delete of a model that others protect; and
    whatever its view adds in ``error_statuses`` (action or method name -> {status:
    description or None})."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, description in self._error_statuses().items():
            responses.setdefault(
                str(code),
                self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, description=description),
                    str(code),
                    direction=direction,
                ),
            )
        return responses

    def _error_statuses(self) -> dict[int, str]:
        codes: dict[int, str | None] = {401: None, 403: None}
        if self.method in ("POST", "PUT", "PATCH"):
            codes.update({400: None, 415: None})
        if any(parameter["in"] == "query" for parameter in self._get_parameters()):
            codes[400] = None
        if "{" in self.path:
            codes[404] = None
        model = getattr(getattr(self.view, "queryset", None), "model", None)
        if self.method == "DELETE" and model is not None and protecting_relations(model):
            codes[409] = (
                f"Still used: {', '.join(protecting_relations(model))} use it; the message "
                "says how many."
            )
        action = getattr(self.view, "action", None) or self.method.lower()
        codes.update(getattr(self.view, "error_statuses", {}).get(action, {}))
        return {
            code: description or ERROR_DESCRIPTIONS[code]
            for code, description in sorted(codes.items())
        }

    def _resolve_path_parameters(self, variables):
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            if parameter["schema"].get("type") == "integer":
                # Ids start at 1 (bigint): what a client may send, and the first one saved.
                parameter["schema"].update(minimum=1, maximum=2**63 - 1, format="int64")
        return parameters

    def _get_request_body(self, direction="request"):
        body = super()._get_request_body(direction)
        if body is not None and self.method in ("POST", "PUT"):
            body["required"] = True  # a missing body is an empty one: a 400
        return body

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "response" and getattr(serializer, "complete_in_responses", False):
            # Answers carry every field, optional ones of the request included.
            schema["required"] = list(schema.get("properties", {}))
        if direction == "request":
            # What JSON Schema says beyond the fields (RenderRequest: one of two shapes).
            schema.update(getattr(serializer, "request_schema_extra", {}))
        return schema
