"""What the management API's requests may hold and its answers carry, exactly as its OpenAPI
document says: drf-spectacular writes the document from these classes, and the API's CI test
(tests/test_openapi.py, schemathesis) holds the server to it.

So every field checks precisely what the schema states, nothing more and nothing less: a
string is a string (DRF's fields would take 5 for "5", "true" for true), nothing is trimmed
(a length or pattern judges what is stored), no text holds a NUL character (PostgreSQL cannot
store one). What JSON Schema cannot say (template syntax, the variables Logto sends, a
layout's ``{{ content }}``, a sender, ids that must exist, unique fields) is checked in
``validate()`` and answered 422 or 409 (emails.content.management_errors), never 400.
Patterns must match the whole value, as JSON Schema's do (Python's ``$`` would let a final
newline through).
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from rest_framework import serializers

from emails.content.brand import logo_url
from emails.content.drafts import draft_approved
from emails.content.management_errors import Conflict, ProblemSerializer, Unprocessable
from emails.content.transfer import text_to_html
from emails.content.validation import Problem, validate_layout, validate_template
from emails.locales import normalize_locale
from emails.logto import UsageType
from emails.models import (
    ACCENT_COLOR,
    LOGTO_ID,
    Layout,
    LayoutDraft,
    ScopeBrand,
    SenderProfile,
    Template,
    TemplateDraft,
    scope_label,
    validate_from_domain,
    validate_sender,
    validate_support_link,
)

# At least one character that is not a space, and no NUL anywhere.
NON_BLANK = r"^\s*[^\s\x00][^\x00]*$"
# No NUL anywhere (blank is allowed beside it: drf-spectacular writes oneOf [this, ""]).
NO_NUL = r"^[^\x00]+$"
# A BCP 47 tag as emails.locales.normalize_locale reads it ("_" for "-" too).
LANGUAGE_TAG = r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$"
MAX_ID = 2**63 - 1  # primary keys are bigint

# Names of the model's fields (as validation reports them) in the API's words.
API_FIELD_NAMES = {
    "html_body": "details.content",
    "subject": "details.subject",
    "text_body": "text",
    "from_email": "details.sendFrom",
    "preheader": "preheader",
    "html": "html",
    "text": "text",
    "application_id": "applicationId",
    "organization_id": "organizationId",
    "from_address": "fromAddress",
    "support_url": "supportUrl",
}


def _pattern_of(validator: RegexValidator) -> str:
    regex = validator.regex
    return regex if isinstance(regex, str) else regex.pattern


LOGTO_ID_PATTERN = _pattern_of(LOGTO_ID)


class WholeMatch(RegexValidator):
    """A RegexValidator that judges the whole value, as JSON Schema's ``pattern`` does with
    ``^…$`` (``re.search`` lets ``$`` match before a final newline)."""

    def __call__(self, value):
        if not self.regex.fullmatch(str(value)):
            raise DjangoValidationError(self.message, code=self.code, params={"value": value})


class StrictCharField(serializers.CharField):
    """A string and only a string, never trimmed, without NUL; unless ``allow_blank``, with
    a character that is not a space. ``pattern`` replaces that rule."""

    def __init__(self, *, pattern: str | None = None, message: str | None = None, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        if pattern is None:
            pattern = NO_NUL if kwargs.get("allow_blank") else NON_BLANK
        message = message or (
            "must not contain NUL characters"
            if pattern == NO_NUL
            else "must have a character that is not a space, and no NUL characters"
            if pattern == NON_BLANK
            else f"must match {pattern}"
        )
        kwargs["validators"] = [*kwargs.get("validators", ()), WholeMatch(pattern, message)]
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictEmailField(serializers.EmailField):
    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class IdField(serializers.IntegerField):
    """The id of a saved object: an integer (not "5", not 5.0), 1 or more."""

    def __init__(self, **kwargs):
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


def language_tag_field(**kwargs) -> StrictCharField:
    return StrictCharField(
        pattern=LANGUAGE_TAG,
        max_length=35,
        help_text="A BCP 47 language tag, e.g. `en`, `pt-BR`, `zh-Hant-TW`; case is "
        "normalised (`pt-br` becomes `pt-BR`).",
        **kwargs,
    )


class DetailsSerializer(serializers.Serializer):
    """Subject and body, in the field names of Logto's email-templates API."""

    complete_in_responses = True

    subject = StrictCharField(max_length=500, help_text="Django template.")
    content = StrictCharField(
        source="html_body",
        help_text="The HTML body, a Django template (or plain text, with `contentType` "
        "`text/plain`). Where Logto sends a code it must use `{{ code }}`, for invitations "
        "`{{ link }}`; every variable must be one Logto sends for the usage type (422).",
    )
    contentType = serializers.ChoiceField(
        choices=["text/html", "text/plain"],
        default="text/html",
        help_text="In a request, what `content` is: `text/plain` content is stored as the "
        "plain-text part and as paragraphs in the HTML part. Answers always say "
        "`text/html`: `content` is then the stored HTML.",
    )
    replyTo = StrictEmailField(source="reply_to", allow_blank=True, required=False, max_length=254)
    sendFrom = StrictCharField(
        source="from_email",
        allow_blank=True,
        required=False,
        max_length=320,
        help_text="An address, optionally with a name: `Acme <no-reply@acme.example>` "
        "(422 otherwise). Blank: the server's DEFAULT_FROM_EMAIL.",
    )

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["contentType"] = "text/html"
        return data


def _plain_text_as_both_parts(attrs: dict) -> None:
    """``contentType: text/plain``: the content is the plain-text part, and paragraphs of it
    the HTML part. Without ``content`` in the request (a PATCH) there is nothing to convert."""
    if attrs.pop("contentType", "text/html") == "text/plain" and "html_body" in attrs:
        attrs["text_body"] = attrs["html_body"]
        attrs["html_body"] = text_to_html(attrs["html_body"])


def _content_parts(attrs: dict) -> dict:
    """For render and validate, whose ``details`` is nested: the plain-text part, when
    ``contentType`` made one, replaces ``text``."""
    _plain_text_as_both_parts(attrs["details"])
    if "text_body" in attrs["details"]:
        attrs["text"] = attrs["details"].pop("text_body")
    return attrs


def sender_problems(from_email: str) -> list[Problem]:
    """A template's sender: an address (with a name or not) at an allowed domain."""
    if not from_email:
        return []
    try:
        validate_sender(from_email)
        validate_from_domain(from_email)
    except DjangoValidationError as exc:
        return [Problem("from_email", message) for message in exc.messages]
    return []


class LogtoIdField(StrictCharField):
    """A Logto application's or organization's id; null (stored blank): any."""

    def __init__(self, kind: str, **kwargs):
        super().__init__(
            pattern=LOGTO_ID_PATTERN,
            message=str(LOGTO_ID.message),
            max_length=128,
            allow_null=True,
            required=False,
            help_text=f"A Logto {kind} id, as Logto sends it in `payload.{kind}.id`; null: "
            f"any {kind}.",
            **kwargs,
        )

    def run_validation(self, data=serializers.empty):
        return "" if data is None else super().run_validation(data)

    def to_representation(self, value):
        return value or None


class ScopeFilterSerializer(serializers.Serializer):
    """Query parameters of a list by scope: absent is any; blank is unscoped (null)."""

    applicationId = StrictCharField(
        pattern=LOGTO_ID_PATTERN,
        message=str(LOGTO_ID.message),
        max_length=128,
        required=False,
        allow_blank=True,
        help_text="Only those for this application (with or without an organization); "
        "blank: only those for any application (`applicationId` null).",
    )
    organizationId = StrictCharField(
        pattern=LOGTO_ID_PATTERN,
        message=str(LOGTO_ID.message),
        max_length=128,
        required=False,
        allow_blank=True,
        help_text="Only those for this organization (with or without an application); "
        "blank: only those for any organization (`organizationId` null).",
    )

    def filter(self, queryset):
        """``queryset`` narrowed to the scope these (valid) parameters ask for."""
        for name, column in (
            ("applicationId", "application_id"),
            ("organizationId", "organization_id"),
        ):
            if name in self.validated_data:
                queryset = queryset.filter(**{column: self.validated_data[name]})
        return queryset


def unprocessable(problems: list[Problem]) -> Unprocessable:
    return Unprocessable(
        (API_FIELD_NAMES.get(problem.field, problem.field), problem.message, problem.line)
        for problem in problems
    )


def check_layout_exists(layout_id: int | None, *, field: str = "layout") -> None:
    if layout_id is not None and not Layout.objects.filter(pk=layout_id).exists():
        raise Unprocessable([(field, f"no layout with id {layout_id}", None)])


class _ContentSerializer(serializers.ModelSerializer):
    """What a template and its draft both hold: subject and body, plain text, preheader and
    layout, in the names of Logto's email-templates API."""

    complete_in_responses = True

    details = DetailsSerializer(source="*")
    text = StrictCharField(
        source="text_body",
        allow_blank=True,
        required=False,
        help_text="The plain-text part, a Django template; blank: derived from the HTML.",
    )
    preheader = StrictCharField(
        allow_blank=True,
        required=False,
        max_length=300,
        help_text="Preview text mail clients show after the subject.",
    )
    layout = IdField(
        source="layout_id",
        allow_null=True,
        required=False,
        help_text="A layout's id (422 if there is none); null: the HTML body is the whole email.",
    )


class TemplateSerializer(_ContentSerializer):
    """An email template: one per usage type (`templateType`) and language (`languageTag`)."""

    languageTag = language_tag_field(source="locale")
    templateType = serializers.ChoiceField(source="usage_type", choices=UsageType.choices)
    applicationId = LogtoIdField("application", source="application_id")
    organizationId = LogtoIdField("organization", source="organization_id")
    enabled = StrictBooleanField(required=False)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)

    class Meta:
        model = Template
        fields = [
            "id",
            "languageTag",
            "templateType",
            "applicationId",
            "organizationId",
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
        validators: list = []  # uniqueness is a 409, below

    def validate_languageTag(self, value):
        return normalize_locale(value)  # the pattern was checked: this only fixes the case

    def validate(self, attrs):
        _plain_text_as_both_parts(attrs)
        saved = self.instance
        merged = {
            name: attrs.get(name, getattr(saved, name) if saved else default)
            for name, default in (
                ("usage_type", None),
                ("locale", None),
                ("application_id", ""),
                ("organization_id", ""),
                ("subject", None),
                ("preheader", ""),
                ("html_body", None),
                ("text_body", ""),
                ("from_email", ""),
            )
        }
        scope = {name: merged[name] for name in ("application_id", "organization_id")}
        clash = Template.objects.filter(
            usage_type=merged["usage_type"], locale=merged["locale"], **scope
        )
        if saved:
            clash = clash.exclude(pk=saved.pk)
        if clash.exists():
            label = scope_label(**scope)
            raise Conflict(
                f"A {merged['usage_type']} template in {merged['locale']}"
                f"{'' if label == 'any' else f' for {label}'} exists already "
                f"(id {clash.get().pk}).",
                field="languageTag",
            )
        check_layout_exists(attrs.get("layout_id"))
        problems = validate_template(
            usage_type=merged["usage_type"],
            subject=merged["subject"],
            preheader=merged["preheader"],
            html_body=merged["html_body"],
            text_body=merged["text_body"],
        ) + sender_problems(merged["from_email"])
        if problems:
            raise unprocessable(problems)
        return attrs


class TemplateDraftSerializer(_ContentSerializer):
    """A template's working draft: its content, not yet used by any email. ``PUT`` replaces
    it (every content field; absent optional ones become blank), each change of content is a
    new ``revision``; publishing copies it onto the template."""

    revision = serializers.IntegerField(read_only=True)
    approved = serializers.SerializerMethodField(
        help_text="A reviewer approved this revision on a preview link."
    )
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)

    class Meta:
        model = TemplateDraft
        fields = ["details", "text", "preheader", "layout", "revision", "approved", "updatedAt"]

    def get_approved(self, draft) -> bool:
        return draft_approved(draft) is not None

    def validate(self, attrs):
        _plain_text_as_both_parts(attrs)
        template = self.context["template"]
        check_layout_exists(attrs.get("layout_id"))
        problems = validate_template(
            usage_type=template.usage_type,
            subject=attrs["subject"],
            preheader=attrs.get("preheader", ""),
            html_body=attrs["html_body"],
            text_body=attrs.get("text_body", ""),
        ) + sender_problems(attrs.get("from_email", ""))
        if problems:
            raise unprocessable(problems)
        return attrs


class TemplateFilterSerializer(ScopeFilterSerializer):
    """Query parameters of the template list: a blank type or language is the same as absent;
    a blank scope is unscoped."""

    templateType = serializers.ChoiceField(
        choices=UsageType.choices,
        required=False,
        allow_blank=True,
        help_text="Only this usage type.",
    )
    languageTag = StrictCharField(
        pattern=LANGUAGE_TAG,
        max_length=35,
        required=False,
        allow_blank=True,
        help_text="Only this language, in any case (`nl-be` finds `nl-BE`).",
    )


class LayoutSerializer(serializers.ModelSerializer):
    """A shared HTML wrapper around the templates that use it."""

    complete_in_responses = True

    name = StrictCharField(max_length=100, help_text="Unique (409 when taken).")
    applicationId = LogtoIdField("application", source="application_id")
    organizationId = LogtoIdField("organization", source="organization_id")
    html = StrictCharField(
        help_text="A Django template that must use `{{ content }}`: where the template's HTML "
        "body goes (422 without it). Its variables are those of every email."
    )
    text = StrictCharField(
        allow_blank=True,
        required=False,
        help_text="Wraps the plain-text part; when not blank, it must use `{{ content }}` "
        "(422). Default: `{{ content }}`.",
    )

    class Meta:
        model = Layout
        fields = [
            "id",
            "name",
            "applicationId",
            "organizationId",
            "html",
            "text",
            "created_at",
            "updated_at",
        ]

    def validate(self, attrs):
        saved = self.instance
        name = attrs.get("name", getattr(saved, "name", None))
        clash = Layout.objects.filter(name=name)
        if saved:
            clash = clash.exclude(pk=saved.pk)
        if clash.exists():
            raise Conflict(f"A layout named {name!r} exists already.", field="name")
        html = attrs.get("html", getattr(saved, "html", ""))
        text = attrs.get("text", getattr(saved, "text", "{{ content }}"))
        problems = validate_layout(html=html, text=text)
        if problems:
            raise unprocessable(problems)
        return attrs


class LayoutDraftSerializer(serializers.ModelSerializer):
    """A layout's working draft; every email keeps the published layout until it is
    published. ``PUT`` replaces it."""

    complete_in_responses = True

    html = StrictCharField(help_text="Must use `{{ content }}` (422 without it).")
    text = StrictCharField(allow_blank=True, required=False, help_text="Default: `{{ content }}`.")
    revision = serializers.IntegerField(read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)

    class Meta:
        model = LayoutDraft
        fields = ["html", "text", "revision", "updatedAt"]

    def validate(self, attrs):
        attrs.setdefault("text", "{{ content }}")
        problems = validate_layout(html=attrs["html"], text=attrs["text"])
        if problems:
            raise unprocessable(problems)
        return attrs


# --- Sender profiles and brands of applications and organizations ------------------------


class _ScopeRowSerializer(serializers.ModelSerializer):
    """What one application or organization (or one application within one organization)
    has of its own: at least one of the two ids (422 without), one row per scope (409)."""

    complete_in_responses = True
    noun: str
    # Model fields checked beyond their type, when not blank (422): name -> Django validator.
    checked_fields: dict[str, Callable[[str], None]] = {}

    applicationId = LogtoIdField("application", source="application_id")
    organizationId = LogtoIdField("organization", source="organization_id")
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)

    def validate(self, attrs):
        saved = self.instance
        merged = {
            name: attrs.get(name, getattr(saved, name) if saved else "")
            for name in ("application_id", "organization_id", *self.checked_fields)
        }
        scope = {name: merged[name] for name in ("application_id", "organization_id")}
        if not any(scope.values()):
            raise Unprocessable(
                [
                    (
                        None,
                        f"A {self.noun} is for an application, an organization or one "
                        "application within one organization: set `applicationId`, "
                        "`organizationId` or both.",
                        None,
                    )
                ]
            )
        clash = self.Meta.model.objects.filter(**scope)
        if saved:
            clash = clash.exclude(pk=saved.pk)
        if clash.exists():
            raise Conflict(
                f"The {self.noun} of {scope_label(**scope)} exists already (id {clash.get().pk})."
            )
        problems = [
            (API_FIELD_NAMES[name], message, None)
            for name, check in self.checked_fields.items()
            if merged[name]
            for message in _messages(check, merged[name])
        ]
        if problems:
            raise Unprocessable(problems)
        return attrs


def _messages(check, value: str) -> list[str]:
    try:
        check(value)
    except DjangoValidationError as exc:
        return list(exc.messages)
    return []


class SenderProfileSerializer(_ScopeRowSerializer):
    """The sender of one application's or organization's emails, for every template of the
    scope that names none of its own (`details.sendFrom`, `details.replyTo`)."""

    noun = "sender profile"
    checked_fields = {"from_address": validate_from_domain}

    fromName = StrictCharField(
        source="from_name",
        pattern=r"^[^\r\n\x00]+$",
        message="must be on one line, without NUL characters",
        allow_blank=True,
        required=False,
        max_length=100,
        help_text="The name before the address; blank: DEFAULT_FROM_EMAIL's name.",
    )
    fromAddress = StrictEmailField(
        source="from_address",
        allow_blank=True,
        required=False,
        max_length=254,
        help_text="Blank: DEFAULT_FROM_EMAIL's address. When EMAILS_ALLOWED_FROM_DOMAINS is "
        "set, its domain must be one of them (422).",
    )
    replyTo = StrictEmailField(source="reply_to", allow_blank=True, required=False, max_length=254)

    class Meta:
        model = SenderProfile
        fields = [
            "id",
            "applicationId",
            "organizationId",
            "fromName",
            "fromAddress",
            "replyTo",
            "updatedAt",
        ]
        validators: list = []  # uniqueness is a 409, in validate()


class ScopeBrandSerializer(_ScopeRowSerializer):
    """One application's or organization's brand: each field it sets comes before Logto's
    branding in the payload and the global brand settings; a blank one falls through. The
    logo is uploaded in the admin."""

    noun = "brand"
    checked_fields = {"support_url": validate_support_link}

    productName = StrictCharField(
        source="product_name", allow_blank=True, required=False, max_length=100
    )
    accentColor = StrictCharField(
        source="accent_color",
        pattern=_pattern_of(ACCENT_COLOR),
        message=str(ACCENT_COLOR.message),
        allow_blank=True,
        required=False,
        max_length=7,
        help_text="#rrggbb: the top bar of the shipped layout's card.",
    )
    footerText = StrictCharField(
        source="footer_text", allow_blank=True, required=False, max_length=1000
    )
    supportUrl = StrictCharField(
        source="support_url",
        allow_blank=True,
        required=False,
        max_length=300,
        help_text="Where the footer's help link goes: `https://…` or `mailto:` and one address "
        "(422 otherwise).",
    )
    legalAddress = StrictCharField(
        source="legal_address",
        allow_blank=True,
        required=False,
        max_length=500,
        help_text="Company name and address for the footer.",
    )
    logoUrl = serializers.SerializerMethodField(
        help_text="The logo uploaded in the admin, as emails link to it; null: none (or no "
        "EMAILS_PUBLIC_URL to link to)."
    )

    class Meta:
        model = ScopeBrand
        fields = [
            "id",
            "applicationId",
            "organizationId",
            "productName",
            "accentColor",
            "footerText",
            "supportUrl",
            "legalAddress",
            "logoUrl",
            "updatedAt",
        ]
        validators: list = []  # uniqueness is a 409, in validate()

    def get_logoUrl(self, brand) -> str | None:
        return (logo_url(brand.logo.name) or None) if brand.logo else None


# --- Render and validate ------------------------------------------------------------------

PAYLOAD_HELP = 'A Logto payload, e.g. `{"code": "123456", "locale": "en"}`.'


class RenderTemplateSerializer(serializers.Serializer):
    """Render a saved template with a payload."""

    request_schema_extra = {"not": {"required": ["details"]}}

    template = IdField(help_text="A saved template's id (422 if there is none).")
    payload = serializers.DictField(help_text=PAYLOAD_HELP)


class RenderContentSerializer(serializers.Serializer):
    """Render unsaved content with a payload (needs the change permission on templates)."""

    request_schema_extra = {"not": {"required": ["template"]}}

    templateType = serializers.ChoiceField(choices=UsageType.choices, required=False)
    languageTag = language_tag_field(required=False, default="en")
    details = DetailsSerializer()
    text = StrictCharField(allow_blank=True, required=False, default="")
    preheader = StrictCharField(allow_blank=True, required=False, default="", max_length=300)
    layout = IdField(
        allow_null=True, required=False, help_text="A layout's id (422 if there is none)."
    )
    payload = serializers.DictField(help_text=PAYLOAD_HELP)

    def validate(self, attrs):
        attrs["languageTag"] = normalize_locale(attrs["languageTag"])
        check_layout_exists(attrs.get("layout"))
        return _content_parts(attrs)


class RenderErrorSerializer(serializers.Serializer):
    part = serializers.CharField(help_text="The part that failed: subject, html, text, ...")
    line = serializers.IntegerField(allow_null=True)
    message = serializers.CharField()


class RenderedSerializer(serializers.Serializer):
    """The email as it would be sent; a part that fails to render is in `errors`."""

    subject = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField()
    # A field named like Serializer.errors: the metaclass takes it out of the class body.
    errors = RenderErrorSerializer(many=True)  # type: ignore[assignment]


class ValidateSerializer(serializers.Serializer):
    """A template's content, checked as a save would check it, without saving."""

    templateType = serializers.ChoiceField(choices=UsageType.choices)
    details = DetailsSerializer()
    text = StrictCharField(allow_blank=True, required=False, default="")
    preheader = StrictCharField(allow_blank=True, required=False, default="", max_length=300)

    def validate(self, attrs):
        return _content_parts(attrs)


class ValidationSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    problems = ProblemSerializer(many=True)
