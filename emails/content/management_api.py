"""The management API: templates and layouts as code, for automation.

Separate from Logto's endpoint; token authentication (``Authorization: Token <key>``) and the
model permissions of the token's user. Field names follow Logto's email-templates API where
they mean the same thing (``languageTag``, ``templateType``, ``details.subject``,
``details.content``, ``details.contentType``, ``details.replyTo``, ``details.sendFrom``).
Every write goes through the same validation as the admin (emails.content.validation).
"""

from __future__ import annotations

from collections.abc import Sequence

from drf_spectacular.utils import extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import permissions, serializers, viewsets
from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    TokenAuthentication,
)
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from emails.content.composer import compose_content, template_content
from emails.content.transfer import text_to_html
from emails.content.validation import validate_layout, validate_template
from emails.locales import normalize_locale
from emails.logto import UsageType
from emails.models import Layout, Template, validate_sender

API_FIELD_NAMES = {
    "html_body": "details.content",
    "subject": "details.subject",
    "text_body": "text",
    "preheader": "preheader",
    "html": "html",
    "text": "text",
}


class ModelPermissions(permissions.DjangoModelPermissions):
    """DRF's model permissions, with the view permission required to read."""

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }


class CanViewTemplates(permissions.BasePermission):
    def has_permission(self, request, view):
        return bool(request.user and request.user.has_perm("emails.view_template"))


def _raise(problems) -> None:
    if problems:
        errors: dict[str, list[str]] = {}
        for problem in problems:
            errors.setdefault(API_FIELD_NAMES.get(problem.field, problem.field), []).append(
                str(problem)
            )
        raise serializers.ValidationError(errors)


class DetailsSerializer(serializers.Serializer):
    subject = serializers.CharField(max_length=500)
    content = serializers.CharField(source="html_body", trim_whitespace=False)
    contentType = serializers.ChoiceField(
        choices=["text/html", "text/plain"],
        default="text/html",
        write_only=True,
        help_text="text/plain content is stored as the plain-text part and shown as "
        "paragraphs in the HTML part.",
    )
    replyTo = serializers.EmailField(source="reply_to", allow_blank=True, required=False)
    sendFrom = serializers.CharField(
        source="from_email",
        allow_blank=True,
        required=False,
        max_length=320,
        validators=[validate_sender],
    )

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["contentType"] = "text/html"
        return data


class TemplateSerializer(serializers.ModelSerializer):
    languageTag = serializers.CharField(source="locale", max_length=35)
    templateType = serializers.ChoiceField(source="usage_type", choices=UsageType.choices)
    details = DetailsSerializer(source="*")
    text = serializers.CharField(
        source="text_body", allow_blank=True, required=False, trim_whitespace=False
    )
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)

    class Meta:
        model = Template
        fields = [
            "id",
            "languageTag",
            "templateType",
            "details",
            "text",
            "preheader",
            "layout",
            "enabled",
            "version",
            "createdAt",
            "updatedAt",
        ]
        read_only_fields = ["version"]
        validators: list = []  # uniqueness is checked below, with a readable message

    def validate_languageTag(self, value):
        try:
            return normalize_locale(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate(self, attrs):
        if attrs.pop("contentType", "text/html") == "text/plain":
            attrs["text_body"] = attrs["html_body"]
            attrs["html_body"] = text_to_html(attrs["html_body"])
        merged = (
            {
                name: getattr(self.instance, name)
                for name in (
                    "usage_type",
                    "locale",
                    "subject",
                    "preheader",
                    "html_body",
                    "text_body",
                )
            }
            if self.instance
            else {"preheader": "", "text_body": ""}
        )
        merged.update(attrs)
        clash = Template.objects.filter(usage_type=merged["usage_type"], locale=merged["locale"])
        if self.instance:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(
                {"languageTag": [f"a {merged['usage_type']} template in {merged['locale']} exists"]}
            )
        _raise(
            validate_template(
                usage_type=merged["usage_type"],
                subject=merged["subject"],
                preheader=merged["preheader"],
                html_body=merged["html_body"],
                text_body=merged["text_body"],
            )
        )
        return attrs


class LayoutSerializer(serializers.ModelSerializer):
    class Meta:
        model = Layout
        fields = ["id", "name", "html", "text", "created_at", "updated_at"]

    def validate(self, attrs):
        html = attrs.get("html", getattr(self.instance, "html", ""))
        text = attrs.get("text", getattr(self.instance, "text", ""))
        _raise(validate_layout(html=html, text=text))
        return attrs


class TokenAuthenticated:
    authentication_classes: Sequence[type[BaseAuthentication]] = [TokenAuthentication]


class SchemaView(SpectacularAPIView):
    """The OpenAPI document, for those who may use the API: a token (scripts, client
    generators) or an admin session (a person in the browser), with the view permission on
    templates. It describes every endpoint, so it is not public."""

    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [CanViewTemplates]


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI behind the same rule as the document. The split view serves its start-up
    script as a file of its own (``?script``), so the page needs no inline script (CSP)."""

    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [CanViewTemplates]


class TemplateViewSet(TokenAuthenticated, viewsets.ModelViewSet):
    """Email templates, one per usage type and language."""

    queryset = Template.objects.all()
    serializer_class = TemplateSerializer
    permission_classes = [ModelPermissions]

    def get_queryset(self):
        queryset = super().get_queryset()
        for parameter, field in (("templateType", "usage_type"), ("languageTag", "locale")):
            if self.request.query_params.get(parameter):
                queryset = queryset.filter(**{field: self.request.query_params[parameter]})
        return queryset


class LayoutViewSet(TokenAuthenticated, viewsets.ModelViewSet):
    """Shared wrappers around templates; ``{{ content }}`` is where a template goes."""

    queryset = Layout.objects.all()
    serializer_class = LayoutSerializer
    permission_classes = [ModelPermissions]


RENDER_REQUEST = inline_serializer(
    "RenderRequest",
    {
        "template": serializers.IntegerField(
            required=False, help_text="A saved template's id, or:"
        ),
        "templateType": serializers.ChoiceField(choices=UsageType.choices, required=False),
        "languageTag": serializers.CharField(required=False),
        "details": DetailsSerializer(required=False),
        "text": serializers.CharField(required=False),
        "preheader": serializers.CharField(required=False),
        "layout": serializers.IntegerField(required=False, allow_null=True),
        "payload": serializers.DictField(help_text='A Logto payload, e.g. {"code": "123456"}.'),
    },
)


class RenderRequestSerializer(serializers.Serializer):
    template = serializers.IntegerField(required=False)
    templateType = serializers.ChoiceField(choices=UsageType.choices, required=False)
    languageTag = serializers.CharField(required=False, default="en", max_length=35)
    details = serializers.DictField(required=False, default=dict)
    text = serializers.CharField(
        required=False, default="", allow_blank=True, trim_whitespace=False
    )
    preheader = serializers.CharField(required=False, default="", allow_blank=True)
    layout = serializers.IntegerField(required=False, allow_null=True)
    payload = serializers.DictField(required=False, default=dict)


class RenderView(TokenAuthenticated, APIView):
    """Rendering inline content is writing a template: it takes the change permission;
    rendering a saved one, the view permission."""

    permission_classes = [CanViewTemplates]

    @extend_schema(
        request=RENDER_REQUEST,
        responses=inline_serializer(
            "Rendered",
            {
                "subject": serializers.CharField(),
                "html": serializers.CharField(),
                "text": serializers.CharField(),
                "errors": serializers.ListField(),
            },
        ),
    )
    def post(self, request):
        """Render a saved template (``template``) or inline content with a payload."""
        data = _validated(RenderRequestSerializer, request)
        if data.get("template") is not None:
            template = Template.objects.filter(pk=data["template"]).first()
            if template is None:
                raise serializers.ValidationError({"template": ["no such template"]})
            content, locale = template_content(template), template.locale
        else:
            if not request.user.has_perm("emails.change_template"):
                raise PermissionDenied("Rendering inline content needs the change permission.")
            details = data["details"]
            content = {
                "subject": str(details.get("subject", "")),
                "html": str(details.get("content", "")),
                "text": data["text"],
                "preheader": data["preheader"],
                "layout_id": data.get("layout"),
            }
            locale = data["languageTag"]
        rendered = compose_content(content, payload=data["payload"], locale=locale)
        return Response(
            {
                "subject": rendered.subject,
                "html": rendered.html,
                "text": rendered.text,
                "errors": rendered.error_list(),
            }
        )


def _validated(serializer_class, request) -> dict:
    if not isinstance(request.data, dict):
        raise serializers.ValidationError({"non_field_errors": ["send a JSON object"]})
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class ValidateRequestSerializer(serializers.Serializer):
    templateType = serializers.ChoiceField(choices=UsageType.choices)
    details = serializers.DictField(required=False, default=dict)
    text = serializers.CharField(
        required=False, default="", allow_blank=True, trim_whitespace=False
    )
    preheader = serializers.CharField(required=False, default="", allow_blank=True)


class ValidateView(TokenAuthenticated, APIView):
    permission_classes = [CanViewTemplates]

    @extend_schema(
        request=TemplateSerializer,
        responses=inline_serializer(
            "Validation",
            {
                "valid": serializers.BooleanField(),
                "problems": serializers.ListField(),
            },
        ),
    )
    def post(self, request):
        """Validate a template without saving it; answers every problem with its line."""
        data = _validated(ValidateRequestSerializer, request)
        details = data["details"]
        problems = validate_template(
            usage_type=data["templateType"],
            subject=str(details.get("subject", "")),
            html_body=str(details.get("content", "")),
            text_body=data["text"],
            preheader=data["preheader"],
        )
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
