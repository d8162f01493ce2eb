"""The management API: templates and layouts as code, for automation, and the sender
profiles and brands of Logto applications and organizations.

Separate from Logto's endpoint; token authentication (``Authorization: Token <key>``) and the
model permissions of the token's user. Field names follow Logto's email-templates API where
they mean the same thing (``languageTag``, ``templateType``, ``details.subject``,
``details.content``, ``details.contentType``, ``details.replyTo``, ``details.sendFrom``).
Every write goes through the same validation as the admin (emails.content.validation).

The OpenAPI document (drf-spectacular, ``/api/schema/``) is the contract: requests are
checked exactly as it says (emails.content.management_serializers), every error answer has
one shape and is documented on each operation (emails.content.management_errors), and
tests/test_openapi.py runs schemathesis against a live server to hold the two together.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import permissions, serializers, viewsets
from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    TokenAuthentication,
)
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.response import Response
from rest_framework.schemas.inspectors import ViewInspector
from rest_framework.views import APIView

from emails.content.composer import compose_content, template_content
from emails.content.drafts import (
    PublishRefused,
    draft_discard,
    draft_of,
    draft_publish,
    draft_save,
)
from emails.content.management_errors import (
    Conflict,
    ManagementSchema,
    Unprocessable,
    exception_handler,
)
from emails.content.management_serializers import (
    API_FIELD_NAMES,
    LayoutDraftSerializer,
    LayoutSerializer,
    RenderContentSerializer,
    RenderedSerializer,
    RenderTemplateSerializer,
    ScopeBrandSerializer,
    ScopeFilterSerializer,
    SenderProfileSerializer,
    TemplateDraftSerializer,
    TemplateFilterSerializer,
    TemplateSerializer,
    ValidateSerializer,
    ValidationSerializer,
    sender_problems,
)
from emails.content.validation import validate_template
from emails.locales import normalize_locale
from emails.models import Layout, ScopeBrand, SenderProfile, Template


class ModelPermissions(permissions.DjangoModelPermissions):
    """DRF's model permissions, with the view permission required to read."""

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }


class DraftPermissions(permissions.BasePermission):
    """A template's (layout's) draft: reading it takes the view permission, saving or
    discarding it the change permission, publishing it ``emails.publish_template``
    (``emails.publish_layout``)."""

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if view.action == "publish":
            return user.has_perm(f"emails.publish_{view.noun}")
        if request.method in permissions.SAFE_METHODS:
            return user.has_perm(f"emails.view_{view.noun}")
        return user.has_perm(f"emails.change_{view.noun}")


class CanViewTemplates(permissions.BasePermission):
    def has_permission(self, request, view):
        return bool(request.user and request.user.has_perm("emails.view_template"))


# What the schema says of an id in a path (ManagementAPI.lookup_value_regex, anchored).
ANY_ID = "^[^/]+$"


class ManagementAPI:
    """What every management API view shares: tokens, JSON bodies only (415 otherwise),
    errors in one shape, and a schema that documents them (emails.content.management_errors).
    """

    authentication_classes: Sequence[type[BaseAuthentication]] = [TokenAuthentication]
    parser_classes: Sequence[type[BaseParser]] = [JSONParser]
    schema: ViewInspector | None = ManagementSchema()
    # Any path segment reaches the view, so an id like "1.5" is the API's JSON 404.
    lookup_value_regex = "[^/]+"

    def get_exception_handler(self):
        return exception_handler


class SchemaView(ManagementAPI, SpectacularAPIView):
    """The OpenAPI document, for those who may use the API: a token (scripts, client
    generators) or an admin session (a person in the browser), with the view permission on
    templates. It describes every endpoint, so it is not public."""

    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [CanViewTemplates]


class DocsView(ManagementAPI, SpectacularSwaggerSplitView):
    """Swagger UI behind the same rule as the document. The split view serves its start-up
    script as a file of its own (``?script``), so the page needs no inline script (CSP)."""

    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [CanViewTemplates]


DUTCH_SIGN_IN = {
    "languageTag": "nl-BE",
    "templateType": "SignIn",
    "details": {
        "subject": "Je aanmeldcode",
        "content": "<p>Je code is <strong>{{ code }}</strong>.</p>",
        "contentType": "text/html",
        "replyTo": "",
        "sendFrom": "",
    },
    "text": "",
    "preheader": "Geldig voor {{ expires_in_minutes }} minuten",
    "layout": None,
    "enabled": True,
}
BARE_LAYOUT = {"name": "Bare", "html": "<div>{{ content }}</div>", "text": "{{ content }}"}


def _example(name: str, value: dict) -> OpenApiExample:
    return OpenApiExample(name, value=value, request_only=True)


UNIQUE_TEMPLATE = (
    "A template for this `templateType`, `languageTag`, `applicationId` and `organizationId` "
    "exists already; or publishing needs an approval (`EMAILS_PUBLISH_REQUIRES_APPROVAL`): "
    "write the draft instead."
)
UNIQUE_LAYOUT = "A layout with this `name` exists already."


class PublishesAtOnce(permissions.BasePermission):
    """Writing a template (a layout) itself changes what emails use at once: besides the model
    permission, it takes ``emails.publish_template`` (``emails.publish_layout``). Drafts are
    the way for those who may only edit."""

    def has_permission(self, request, view):
        return request.user.has_perm(f"emails.publish_{view.noun}")


class DraftEndpoints:
    """``<id>/draft/`` (GET, PUT, DELETE) and ``<id>/draft/publish/`` (POST) on a viewset of
    templates or layouts (emails.content.drafts)."""

    draft_serializer: type[serializers.ModelSerializer]
    noun: str

    publishing_actions: tuple[str, ...] = ("update", "partial_update")

    def get_permissions(self):
        if self.action in ("draft", "publish"):
            return [DraftPermissions()]
        chosen = super().get_permissions()
        if self.action in self.publishing_actions:
            chosen = [*chosen, PublishesAtOnce()]
        return chosen

    def draft_values(self, data: dict) -> dict:
        raise NotImplementedError

    def check_permissions(self, request):
        super().check_permissions(request)
        if (
            self.action in self.publishing_actions
            and self.noun == "template"
            and settings.EMAILS_PUBLISH_REQUIRES_APPROVAL
        ):
            raise Conflict(
                "Publishing needs a reviewer's approval (EMAILS_PUBLISH_REQUIRES_APPROVAL): "
                "save the content as the template's draft (PUT …/draft/) instead."
            )

    def _draft(self, request, pk=None):
        obj = self.get_object()
        if request.method == "PUT":
            serializer = self.draft_serializer(
                data=_json_object(request), context={"template": obj}
            )
            serializer.is_valid(raise_exception=True)
            draft = draft_save(obj, self.draft_values(serializer.validated_data), user=request.user)
            return Response(self.draft_serializer(draft).data)
        draft = draft_of(obj)
        if draft is None:
            raise NotFound(f"This {self.noun} has no draft.")
        if request.method == "DELETE":
            draft_discard(obj)
            return Response(status=204)
        return Response(self.draft_serializer(draft).data)

    def _publish(self, request, pk=None):
        obj = self.get_object()
        if draft_of(obj) is None:
            raise Conflict(f"This {self.noun} has no draft to publish.")
        try:
            obj = draft_publish(obj, user=request.user)
        except PublishRefused as refused:
            raise Conflict(str(refused)) from None
        except DjangoValidationError as invalid:
            raise Unprocessable(
                (API_FIELD_NAMES.get(field, field), message, None)
                for field, messages in invalid.message_dict.items()
                for message in messages
            ) from None
        return Response(self.get_serializer(obj).data)


def _draft_schema(noun: str, serializer, published):
    """The OpenAPI description of a viewset's draft endpoints."""
    read = extend_schema(methods=["GET"], summary=f"Read a {noun}'s draft", responses=serializer)
    save = extend_schema(
        methods=["PUT"],
        summary=f"Save a {noun}'s draft",
        description="Replaces the draft (creates it when there is none); emails keep using "
        f"the published {noun} until the draft is published. A change of content is a new "
        "`revision`.",
        request=serializer,
        responses=serializer,
    )
    drop = extend_schema(
        methods=["DELETE"],
        summary=f"Discard a {noun}'s draft",
        description="The published content stays.",
        responses={204: None},
    )
    publish = extend_schema(
        summary=f"Publish a {noun}'s draft",
        description=f"Copies the draft onto the {noun} (the next emails use it) and drops the "
        f"draft. Needs the `emails.publish_{noun}` permission"
        + (
            "; with `EMAILS_PUBLISH_REQUIRES_APPROVAL`, an approval of the draft's revision "
            "(409 without)."
            if noun == "template"
            else "."
        ),
        request=None,
        responses=published,
    )
    return read, save, drop, publish


_T_READ, _T_SAVE, _T_DROP, _T_PUBLISH = _draft_schema(
    "template", TemplateDraftSerializer, TemplateSerializer
)
_L_READ, _L_SAVE, _L_DROP, _L_PUBLISH = _draft_schema(
    "layout", LayoutDraftSerializer, LayoutSerializer
)


@extend_schema_view(
    list=extend_schema(summary="List templates", parameters=[TemplateFilterSerializer]),
    create=extend_schema(
        summary="Create a template", examples=[_example("Dutch sign-in", DUTCH_SIGN_IN)]
    ),
    retrieve=extend_schema(summary="Read a template"),
    update=extend_schema(summary="Replace a template"),
    partial_update=extend_schema(summary="Change some fields of a template"),
    destroy=extend_schema(summary="Delete a template"),
)
class TemplateViewSet(DraftEndpoints, ManagementAPI, viewsets.ModelViewSet):
    """Email templates, one per usage type and language. Every write is checked like the
    admin's (422 with every problem and its line)."""

    queryset = Template.objects.all()
    serializer_class = TemplateSerializer
    permission_classes = [ModelPermissions]
    error_statuses = {
        **{
            action: {409: UNIQUE_TEMPLATE, 422: None}
            for action in ("create", "update", "partial_update")
        },
        "draft": {422: None},
        "publish": {
            409: "There is no draft, or publishing needs an approval of this draft revision "
            "(`EMAILS_PUBLISH_REQUIRES_APPROVAL`).",
            422: None,
        },
    }

    draft_serializer = TemplateDraftSerializer
    noun = "template"
    # A new template serves at once too (a layout serves nothing until a template uses it).
    publishing_actions = ("create", "update", "partial_update")

    def draft_values(self, data: dict) -> dict:
        layout_id = data.get("layout_id")
        return {
            "subject": data["subject"],
            "preheader": data.get("preheader", ""),
            "html_body": data["html_body"],
            "text_body": data.get("text_body", ""),
            "layout": Layout.objects.get(pk=layout_id) if layout_id else None,
            "from_email": data.get("from_email", ""),
            "reply_to": data.get("reply_to", ""),
        }

    @_T_READ
    @_T_SAVE
    @_T_DROP
    @action(detail=True, methods=["get", "put", "delete"], url_path="draft")
    def draft(self, request, pk=None):
        return self._draft(request, pk)

    @_T_PUBLISH
    @action(detail=True, methods=["post"], url_path="draft/publish")
    def publish(self, request, pk=None):
        return self._publish(request, pk)

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "list":
            filters = TemplateFilterSerializer(data=self.request.query_params)
            filters.is_valid(raise_exception=True)
            if usage_type := filters.validated_data.get("templateType"):
                queryset = queryset.filter(usage_type=usage_type)
            if locale := filters.validated_data.get("languageTag"):
                queryset = queryset.filter(locale=normalize_locale(locale))
            queryset = filters.filter(queryset)
        return queryset


class ScopeFiltered:
    """A list filtered by ``?applicationId=`` and ``?organizationId=``."""

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "list":
            filters = ScopeFilterSerializer(data=self.request.query_params)
            filters.is_valid(raise_exception=True)
            queryset = filters.filter(queryset)
        return queryset


@extend_schema_view(
    list=extend_schema(summary="List layouts", parameters=[ScopeFilterSerializer]),
    create=extend_schema(summary="Create a layout", examples=[_example("Bare", BARE_LAYOUT)]),
    retrieve=extend_schema(summary="Read a layout"),
    update=extend_schema(summary="Replace a layout"),
    partial_update=extend_schema(summary="Change some fields of a layout"),
    destroy=extend_schema(
        summary="Delete a layout",
        description="Refused (409) while templates use it.",
        # An example id, so that the examples phase of tests/test_openapi.py deletes the
        # layout its seed makes templates use (the 409) whatever else the schema holds.
        parameters=[
            OpenApiParameter(
                "id",
                str,
                OpenApiParameter.PATH,
                pattern=ANY_ID,
                examples=[OpenApiExample("Layout 1", value="1")],
            )
        ],
    ),
)
class LayoutViewSet(ScopeFiltered, DraftEndpoints, ManagementAPI, viewsets.ModelViewSet):
    """Shared wrappers around templates; ``{{ content }}`` is where a template goes."""

    queryset = Layout.objects.all()
    serializer_class = LayoutSerializer
    permission_classes = [ModelPermissions]
    error_statuses = {
        **{
            action: {409: UNIQUE_LAYOUT, 422: None}
            for action in ("create", "update", "partial_update")
        },
        "draft": {422: None},
        "publish": {409: "There is no draft to publish.", 422: None},
    }
    draft_serializer = LayoutDraftSerializer
    noun = "layout"

    def draft_values(self, data: dict) -> dict:
        return {"html": data["html"], "text": data["text"]}

    @_L_READ
    @_L_SAVE
    @_L_DROP
    @action(detail=True, methods=["get", "put", "delete"], url_path="draft")
    def draft(self, request, pk=None):
        return self._draft(request, pk)

    @_L_PUBLISH
    @action(detail=True, methods=["post"], url_path="draft/publish")
    def publish(self, request, pk=None):
        return self._publish(request, pk)


SCOPE_WRITE_ERRORS = {
    409: "This `applicationId` and `organizationId` have one already.",
    422: "Neither `applicationId` nor `organizationId` is set, or a field fails a check "
    "JSON Schema cannot state (named in `field`).",
}


def _scoped_schema(noun: str, plural: str, example: dict):
    """The OpenAPI description of a viewset of one model per scope."""
    return extend_schema_view(
        list=extend_schema(summary=f"List {plural}", parameters=[ScopeFilterSerializer]),
        create=extend_schema(
            summary=f"Create a {noun}", examples=[_example(f"An organization's {noun}", example)]
        ),
        retrieve=extend_schema(summary=f"Read a {noun}"),
        update=extend_schema(summary=f"Replace a {noun}"),
        partial_update=extend_schema(summary=f"Change some fields of a {noun}"),
        destroy=extend_schema(summary=f"Delete a {noun}"),
    )


class ScopedViewSet(ScopeFiltered, ManagementAPI, viewsets.ModelViewSet):
    """One row per application, organization, or application within an organization; a
    write applies to the next email at once."""

    permission_classes = [ModelPermissions]
    error_statuses = {
        action: SCOPE_WRITE_ERRORS for action in ("create", "update", "partial_update")
    }


@_scoped_schema(
    "sender profile",
    "sender profiles",
    {
        "applicationId": None,
        "organizationId": "acme-org",
        "fromName": "Acme",
        "fromAddress": "no-reply@acme.example",
        "replyTo": "help@acme.example",
    },
)
class SenderProfileViewSet(ScopedViewSet):
    """Who an application's or organization's emails come from, for every template of its
    scope that names no sender of its own (an organization's before an application's)."""

    queryset = SenderProfile.objects.all()
    serializer_class = SenderProfileSerializer


@_scoped_schema(
    "brand",
    "brands",
    {
        "applicationId": None,
        "organizationId": "acme-org",
        "productName": "Acme",
        "accentColor": "#5d34f2",
        "footerText": "",
        "supportUrl": "mailto:help@acme.example",
        "legalAddress": "Acme Ltd, 1 Main Street, Springfield",
    },
)
class ScopeBrandViewSet(ScopedViewSet):
    """An application's or organization's brand: what it sets comes before Logto's branding
    in the payload and the global brand settings (an organization's before an
    application's). Its logo is uploaded in the admin."""

    queryset = ScopeBrand.objects.all()
    serializer_class = ScopeBrandSerializer


RENDER_REQUEST = PolymorphicProxySerializer(
    component_name="Render",
    serializers=[RenderTemplateSerializer, RenderContentSerializer],
    resource_type_field_name=None,
)


def _json_object(request) -> dict:
    if not isinstance(request.data, dict):
        raise serializers.ValidationError("The body must be a JSON object.")
    return request.data


class RenderView(ManagementAPI, APIView):
    """Rendering inline content is writing a template: it takes the change permission;
    rendering a saved one, the view permission."""

    permission_classes = [CanViewTemplates]
    error_statuses = {"post": {422: "The `template` or `layout` id names nothing saved."}}

    @extend_schema(
        summary="Render an email",
        request=RENDER_REQUEST,
        responses=RenderedSerializer,
        examples=[
            _example(
                "Unsaved content",
                {
                    "languageTag": "nl-BE",
                    "details": DUTCH_SIGN_IN["details"],
                    "payload": {"code": "123456", "locale": "nl-BE"},
                },
            )
        ],
    )
    def post(self, request):
        """Render a saved template (`template`) or unsaved content (`details`, ...) with a
        Logto payload, exactly as it would be sent. A part that fails to render is in
        `errors` (200)."""
        data = _json_object(request)
        if ("template" in data) == ("details" in data):
            raise serializers.ValidationError(
                "Send `template` (a saved template's id) or `details` (content to render), "
                "with a `payload`."
            )
        if "template" in data:
            saved = _validated(RenderTemplateSerializer, data)
            template = Template.objects.filter(pk=saved["template"]).first()
            if template is None:
                raise Unprocessable(
                    [("template", f"no template with id {saved['template']}", None)]
                )
            content, locale = template_content(template), template.locale
        else:
            if not request.user.has_perm("emails.change_template"):
                raise PermissionDenied("Rendering inline content needs the change permission.")
            saved = _validated(RenderContentSerializer, data)
            details = saved["details"]
            content = {
                "subject": details["subject"],
                "html": details["html_body"],
                "text": saved["text"],
                "preheader": saved["preheader"],
                "layout_id": saved.get("layout"),
            }
            locale = saved["languageTag"]
        rendered = compose_content(content, payload=saved["payload"], locale=locale)
        return Response(
            {
                "subject": rendered.subject,
                "html": rendered.html,
                "text": rendered.text,
                "errors": rendered.error_list(),
            }
        )


def _validated(serializer_class, data: dict) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class ValidateView(ManagementAPI, APIView):
    permission_classes = [CanViewTemplates]

    @extend_schema(
        summary="Validate a template without saving it",
        request=ValidateSerializer,
        examples=[
            _example(
                "A misspelt variable",
                {
                    "templateType": "SignIn",
                    "details": {"subject": "{{ aplication.name }}", "content": "<p>{{ code }}</p>"},
                },
            )
        ],
        responses=ValidationSerializer,
    )
    def post(self, request):
        """Check a template's content as a save would: every problem with its field and
        line (200 either way)."""
        data = _validated(ValidateSerializer, _json_object(request))
        details = data["details"]
        problems = validate_template(
            usage_type=data["templateType"],
            subject=details["subject"],
            html_body=details["html_body"],
            text_body=data["text"],
            preheader=data["preheader"],
        ) + sender_problems(details.get("from_email", ""))
        return Response(
            {
                "valid": not problems,
                "problems": [
                    {
                        "field": API_FIELD_NAMES.get(p.field, p.field),
                        "line": p.line,
                        "message": p.message,
                    }
                    for p in problems
                ],
            }
        )
