"""The admin's forms for templates and layouts: the model's own field checks, then the
content checked as a whole (emails.content.clean), each problem on its field."""

from __future__ import annotations

from django import forms

from emails.content.clean import layout_content_check, template_content_check
from emails.models import Layout, Template


class TemplateForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = (
            "usage_type",
            "locale",
            "enabled",
            "layout",
            "subject",
            "preheader",
            "html_body",
            "text_body",
            "from_email",
            "reply_to",
        )

    def clean(self):
        data = super().clean()
        template_content_check(
            usage_type=data.get("usage_type") or "",
            subject=data.get("subject") or "",
            preheader=data.get("preheader") or "",
            html_body=data.get("html_body") or "",
            text_body=data.get("text_body") or "",
        )
        return data


class LayoutForm(forms.ModelForm):
    class Meta:
        model = Layout
        fields = ("name", "html", "text")

    def clean(self):
        data = super().clean()
        layout_content_check(html=data.get("html") or "", text=data.get("text") or "")
        return data
