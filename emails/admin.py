from django.contrib import admin

from emails.models import Message, Template


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ("usage_type", "locale", "subject", "enabled", "updated_at")
    list_filter = ("usage_type", "locale", "enabled")
    search_fields = ("subject", "html_body", "text_body")
    fieldsets = (
        (None, {"fields": ("usage_type", "locale", "enabled")}),
        ("Content", {"fields": ("subject", "html_body", "text_body")}),
        ("Sender", {"fields": ("from_email", "reply_to"), "classes": ("collapse",)}),
    )


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Read-only log. The payload is never shown: it carries verification codes and links."""

    list_display = (
        "created_at",
        "to",
        "usage_type",
        "template_locale",
        "used_fallback",
        "status",
        "provider_message_id",
    )
    list_filter = ("status", "usage_type", "used_fallback", "created_at")
    search_fields = ("to", "provider_message_id")
    exclude = ("payload",)
    readonly_fields = [field.name for field in Message._meta.fields if field.name != "payload"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
