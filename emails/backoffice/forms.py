"""The admin's forms for templates and layouts: the model's own field checks, then the
content checked as a whole (emails.content.clean), each problem on its field."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join

from emails.content.brand import LOGO_MAX_BYTES, LogoRefused, brand_forget, logo_store
from emails.content.clean import layout_content_check, template_content_check
from emails.content.scopes import layout_rescope_problem, layout_scope_problem, scope_choices
from emails.locales import normalize_locale
from emails.models import Brand, Layout, ScopeBrand, SenderProfile, Template, normalize_newlines

# The code editor (vendored CodeMirror 5), on the forms only: the lists do not load it.
CODEMIRROR = "emails/vendor/codemirror-5.65.21/"
CODEMIRROR_JS = [
    "lib/codemirror.js",
    "addon/mode/overlay.js",
    "mode/xml/xml.js",
    "mode/javascript/javascript.js",
    "mode/css/css.js",
    "mode/htmlmixed/htmlmixed.js",
    "mode/django/django.js",
]
CODE_EDITOR = "emails/codeeditor.js"  # the keyboard's way out, and "leave unsaved edits?"
EMAIL_FRAME = "emails/emailframe.js"  # the preview: real width, zoom, light/dark, no flash
EDITOR_CSS = {
    "all": [
        CODEMIRROR + "lib/codemirror.css",
        "emails/emailframe.css",
        "emails/editor.css",
        "emails/diff.css",
    ]
}


class NewlineField(forms.CharField):
    """A text field whose value has one line ending, kept as typed otherwise (no stripping):
    so the admin's "changed" list and the history count neither the browser's \r\n nor a
    final newline the form would have dropped as an edit."""

    def __init__(self, *, strip=False, **kwargs):
        super().__init__(strip=strip, **kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        return normalize_newlines(value) if isinstance(value, str) else value


def int_or_none(value: str | None) -> int | None:
    """An id or number from a form or query string, or None (``"²".isdigit()`` is true, but
    no int; ``?a=abc`` is no id, not a 500)."""
    if not value or not (value.isascii() and value.isdecimal() and len(value) < 19):
        return None
    return int(value)


class ScopeIdInput(forms.TextInput):
    """A Logto id, typed or picked from the ids already seen in messages (with the names
    Logto sent) and those other templates are scoped to: an <input list> and its datalist."""

    def __init__(self, kind: str, attrs=None):
        super().__init__({"autocomplete": "off", "spellcheck": "false", **(attrs or {})})
        self.kind = kind

    def render(self, name, value, attrs=None, renderer=None):
        list_id = f"mailroom-{self.kind}-ids"
        attrs = {**(attrs or {}), "list": list_id}
        field = super().render(name, value, attrs, renderer)
        options = format_html_join(
            "",
            '<option value="{}">{}</option>',
            ((logto_id, name or logto_id) for logto_id, name in scope_choices()[self.kind]),
        )
        return format_html('{}<datalist id="{}">{}</datalist>', field, list_id, options)


SCOPE_WIDGETS = {
    "application_id": ScopeIdInput("application"),
    "organization_id": ScopeIdInput("organization"),
}


def layout_scope_check(data: dict) -> None:
    """A layout made for one application or organization wraps only that scope's templates."""
    layout = data.get("layout")
    if layout is not None and (
        problem := layout_scope_problem(
            layout,
            application_id=data.get("application_id") or "",
            organization_id=data.get("organization_id") or "",
        )
    ):
        raise ValidationError({"layout": problem})


class TemplateForm(forms.ModelForm):
    class Media:
        css = EDITOR_CSS
        js = [CODEMIRROR + path for path in CODEMIRROR_JS] + [
            CODE_EDITOR,
            EMAIL_FRAME,
            "emails/editor.js",
        ]

    class Meta:
        model = Template
        fields = (
            "usage_type",
            "locale",
            "application_id",
            "organization_id",
            "enabled",
            "layout",
            "subject",
            "preheader",
            "html_body",
            "text_body",
            "from_email",
            "reply_to",
        )
        field_classes = dict.fromkeys(
            ("subject", "preheader", "html_body", "text_body"), NewlineField
        )
        widgets = SCOPE_WIDGETS

    # Set by the admin (TemplateAdmin.get_form): may this user change what emails use at once?
    # No unless it says so.
    may_publish = False

    def clean(self):
        data = super().clean()
        template_content_check(
            usage_type=data.get("usage_type") or "",
            subject=data.get("subject") or "",
            preheader=data.get("preheader") or "",
            html_body=data.get("html_body") or "",
            text_body=data.get("text_body") or "",
        )
        layout_scope_check(data)
        self._check_live_changes(data)
        return data

    def _check_live_changes(self, data: dict) -> None:
        """The usage type, language, scope and enabled switch apply when saved, to the
        published email: that takes the publish permission, and the published content must
        suit the new usage type (the form's content is only the draft)."""
        row = Template.objects.filter(pk=self.instance.pk).first() if self.instance.pk else None
        if row is None or row.published_at is None:
            return  # nothing of it is live yet
        try:
            locale = normalize_locale(data.get("locale") or "")
        except ValueError:
            return  # the field's own error says so
        new = (
            data.get("usage_type"),
            locale,
            data.get("application_id") or "",
            data.get("organization_id") or "",
            data.get("enabled"),
        )
        if new == (
            row.usage_type,
            row.locale,
            row.application_id,
            row.organization_id,
            row.enabled,
        ):
            return
        if not self.may_publish:
            raise ValidationError(
                "The usage type, language, scope and enabled switch change the published email "
                "at once: that needs the publish permission. Save content changes as a draft."
            )
        if data.get("usage_type") != row.usage_type and row.published_at:
            try:
                template_content_check(
                    usage_type=data.get("usage_type") or "",
                    subject=row.subject,
                    preheader=row.preheader,
                    html_body=row.html_body,
                    text_body=row.text_body,
                )
            except ValidationError as invalid:
                raise ValidationError(
                    "The published content does not suit the new usage type: "
                    + "; ".join(invalid.messages)
                ) from None


class LayoutForm(forms.ModelForm):
    class Media:
        css = EDITOR_CSS
        js = [CODEMIRROR + path for path in CODEMIRROR_JS] + [
            CODE_EDITOR,
            EMAIL_FRAME,
            "emails/surround.js",
        ]

    class Meta:
        model = Layout
        fields = ("name", "application_id", "organization_id", "html", "text")
        field_classes = dict.fromkeys(("html", "text"), NewlineField)
        widgets = SCOPE_WIDGETS

    def clean(self):
        data = super().clean()
        layout_content_check(html=data.get("html") or "", text=data.get("text") or "")
        if self.instance.pk:
            self._check_scope_of_its_templates(data)
        return data

    def _check_scope_of_its_templates(self, data: dict) -> None:
        problem = layout_rescope_problem(
            self.instance,
            application_id=data.get("application_id") or "",
            organization_id=data.get("organization_id") or "",
        )
        if problem:
            raise ValidationError(problem)


DEFAULT_ACCENT = "#5d34f2"  # fixtures/defaults/layout.html's


class BrandForm(forms.ModelForm):
    """The brand settings. The logo is checked by its bytes (emails.content.brand) and
    stored under a name of its own hash."""

    class Media:
        css = {"all": ["emails/emailframe.css", "emails/editor.css"]}
        js = [CODE_EDITOR, EMAIL_FRAME, "emails/surround.js"]  # (codeeditor.js: unsaved edits ask)

    class Meta:
        model = Brand
        fields = (
            "product_name",
            "logo",
            "accent_color",
            "support_url",
            "footer_text",
            "legal_address",
        )
        widgets = {"accent_color": forms.TextInput(attrs={"type": "color"})}
        field_classes = dict.fromkeys(("footer_text", "legal_address"), NewlineField)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A colour input always sends a colour: start it at the shipped layout's.
        if not self.instance.accent_color:
            self.initial["accent_color"] = DEFAULT_ACCENT

    def clean_logo(self):
        logo = self.cleaned_data.get("logo")
        if not logo or not hasattr(logo, "read") or logo == self.instance.logo:
            return logo  # unchanged, or cleared
        content = logo.read(LOGO_MAX_BYTES + 1)
        try:
            self._logo_name = logo_store(content)
        except LogoRefused as refused:
            raise forms.ValidationError(str(refused)) from None
        return logo

    def save(self, commit=True):
        brand = super().save(commit=False)
        if getattr(self, "_logo_name", None):
            brand.logo = self._logo_name  # already stored (by name): no second copy
        if commit:
            brand.save()
        brand_forget()
        return brand


class ScopeBrandForm(BrandForm):
    """One application's or organization's brand: a blank field takes the global one."""

    class Meta:
        model = ScopeBrand
        fields = ("application_id", "organization_id", *BrandForm.Meta.fields)
        widgets = {
            **SCOPE_WIDGETS,
            # Text, not a colour input (which always sends a colour): blank inherits.
            "accent_color": forms.TextInput(attrs={"placeholder": "#rrggbb, blank: inherit"}),
        }
        field_classes = BrandForm.Meta.field_classes

    def __init__(self, *args, **kwargs):
        forms.ModelForm.__init__(self, *args, **kwargs)


class SenderProfileForm(forms.ModelForm):
    class Meta:
        model = SenderProfile
        fields = ("application_id", "organization_id", "from_name", "from_address", "reply_to")
        widgets = SCOPE_WIDGETS
