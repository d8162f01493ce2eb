from django.contrib import admin

from emails.models import Message, MessageEvent, Template


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


class MessageEventInline(admin.TabularInline):
    """The provider's tracking events for a message, oldest first."""

    model = MessageEvent
    fields = ("occurred_at", "event_type", "description", "provider_response", "event_id")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


# Never shown: the payload carries verification codes and links; the dedup key is derived
# from them.
HIDDEN_MESSAGE_FIELDS = ("payload", "dedup_key")


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Read-only log of what Logto asked for and what became of it."""

    list_display = (
        "created_at",
        "to",
        "usage_type",
        "template_locale",
        "used_fallback",
        "status",
        "delivery_status",
        "attempts",
        "provider_message_id",
    )
    list_filter = ("status", "delivery_status", "usage_type", "used_fallback", "created_at")
    search_fields = ("to", "provider_message_id")
    exclude = HIDDEN_MESSAGE_FIELDS
    readonly_fields = [
        field.name for field in Message._meta.fields if field.name not in HIDDEN_MESSAGE_FIELDS
    ]
    inlines = [MessageEventInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
