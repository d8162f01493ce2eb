from functools import partial

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, Exists, OuterRef, Q, Value, When
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from emails.backoffice import coverage, dashboard, editor, publishing, transfer_views, versions
from emails.backoffice.forms import (
    BrandForm,
    LayoutForm,
    ScopeBrandForm,
    SenderProfileForm,
    TemplateForm,
    int_or_none,
)
from emails.backoffice.message_list import (
    SEARCH_HELP,
    BoundedCountPaginator,
    MessageChangeList,
    ProviderFilter,
    UsageTypeFilter,
    message_search,
)
from emails.backoffice.preview_links import preview_link_create, preview_links_revoke
from emails.content.brand import BRAND_FIELDS
from emails.content.defaults import restore_default
from emails.content.drafts import draft_approved, draft_of, draft_save, draft_values
from emails.content.samples import sample_logo_url, samples_for
from emails.content.scopes import scope_choices
from emails.content.selectors import in_logto_order
from emails.delivery.circuits import circuits_close, failover_enabled, open_circuits
from emails.delivery.deliver import messages_resend
from emails.delivery.sweeper import sweeper_late
from emails.logto import UsageType
from emails.models import (
    Brand,
    CircuitState,
    Layout,
    LayoutDraft,
    Message,
    MessageEvent,
    MessageStatus,
    PreviewComment,
    PreviewLink,
    ProviderCircuit,
    ScopeBrand,
    SenderProfile,
    Template,
    TemplateDraft,
)


def _comments_on(template: Template):
    """Designers' comments on this template; by type and locale (unscoped templates only), a
    comment on shared edits outlives the template it was on."""
    comments = PreviewComment.objects.filter(usage_type=template.usage_type, locale=template.locale)
    if template.application_id or template.organization_id:
        return comments.filter(template=template)
    return comments.filter(Q(template=template) | Q(template__isnull=True))


class ScopeFilter(admin.SimpleListFilter):
    """Who a template or layout is for: anyone, or which kind of scope."""

    title = "scope"
    parameter_name = "scope"
    CHOICES = {
        "any": ("Any (unscoped)", {"application_id": "", "organization_id": ""}),
        "application": ("An application", {"organization_id": ""}),
        "organization": ("An organization", {"application_id": ""}),
        "both": ("An application in an organization", {}),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.CHOICES.items()]

    def queryset(self, request, queryset):
        value = self.value()
        if value not in self.CHOICES:
            return queryset
        queryset = queryset.filter(**self.CHOICES[value][1])
        if value in ("application", "both"):
            queryset = queryset.exclude(application_id="")
        if value in ("organization", "both"):
            queryset = queryset.exclude(organization_id="")
        return queryset


class _ScopeIdFilter(admin.SimpleListFilter):
    """One application's or organization's rows: the ids in use, with the names Logto sent."""

    kind = ""

    def lookups(self, request, model_admin):
        field = f"{self.kind}_id"
        names = dict(scope_choices()[self.kind])
        used = (
            model_admin.model.objects.exclude(**{field: ""})
            .values_list(field, flat=True)
            .distinct()
            .order_by(field)[:100]
        )
        return [(logto_id, names.get(logto_id) or logto_id) for logto_id in used]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{f"{self.kind}_id": value}) if value else queryset


class ApplicationFilter(_ScopeIdFilter):
    title, parameter_name, kind = "application", "application_id", "application"


class OrganizationFilter(_ScopeIdFilter):
    title, parameter_name, kind = "organization", "organization_id", "organization"


@admin.register(SenderProfile)
class SenderProfileAdmin(admin.ModelAdmin):
    """Who an application's or organization's emails come from, unless a template says."""

    form = SenderProfileForm
    list_display = ("__str__", "application_id", "organization_id", "from_name", "from_address")
    list_filter = (ScopeFilter, ApplicationFilter, OrganizationFilter)
    search_fields = ("application_id", "organization_id", "from_name", "from_address")


@admin.register(ScopeBrand)
class ScopeBrandAdmin(admin.ModelAdmin):
    """An application's or organization's brand over the global brand settings."""

    form = ScopeBrandForm
    list_display = ("__str__", "application_id", "organization_id", "product_name")
    list_filter = (ScopeFilter, ApplicationFilter, OrganizationFilter)
    search_fields = ("application_id", "organization_id", "product_name")


class VersionedAdmin(SimpleHistoryAdmin):
    """simple-history's history list, plus a diff of any two versions and one-click revert."""

    object_history_list_template = "admin/emails/history_list.html"

    def get_urls(self):
        view = self.admin_site.admin_view
        name = self.model._meta.model_name
        return [
            path(
                "<int:object_id>/history/compare/",
                view(partial(versions.history_compare, model_admin=self)),
                name=f"emails_{name}_history_compare",
            ),
            path(
                "<int:object_id>/history/<int:history_id>/revert/",
                view(partial(versions.history_revert, model_admin=self)),
                name=f"emails_{name}_history_revert",
            ),
            *super().get_urls(),
        ]


def _surround_context(request, templates, model_name: str) -> dict:
    """What the layout and brand pages' live preview needs (surround_preview.html). It shows
    templates, so only to who may read them."""
    user = request.user
    if not (user.has_perm("emails.view_template") or user.has_perm("emails.change_template")):
        return {"can_preview": False}
    return {
        "can_preview": True,
        "samples": _all_samples(request),
        "preview_templates": in_logto_order(templates.only("pk", "usage_type", "locale")),
        "preview_url": reverse(f"admin:emails_{model_name}_preview"),
        "preview_html_url": reverse(f"admin:emails_{model_name}_preview_html"),
    }


def _all_samples(request) -> dict:
    """Every usage type's sample payloads, for the editors' sample picker."""
    return {kind: samples_for(kind, logo_url=sample_logo_url(request)) for kind in UsageType.values}


class DraftedAdmin(VersionedAdmin):
    """Saving saves a draft (emails.content.drafts); Publish, Discard and the draft beside the
    published version are pages of their own. ``own_fields`` are the object's, not its
    content's: they apply when saved."""

    own_fields: tuple[str, ...] = ()

    def has_publish_permission(self, request, obj=None):
        return request.user.has_perm(f"emails.publish_{self.model._meta.model_name}")

    def get_urls(self):
        view = self.admin_site.admin_view
        name = self.model._meta.model_name
        return [
            path(
                "<int:object_id>/draft/publish/",
                view(partial(publishing.publish, model_admin=self)),
                name=f"emails_{name}_publish",
            ),
            path(
                "<int:object_id>/draft/discard/",
                view(partial(publishing.discard, model_admin=self)),
                name=f"emails_{name}_discard",
            ),
            path(
                "<int:object_id>/draft/compare/",
                view(partial(versions.draft_compare, model_admin=self)),
                name=f"emails_{name}_draft_compare",
            ),
            *super().get_urls(),
        ]

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None and getattr(request, "_mailroom_editing", False):
            # The editor edits the draft: the form shows it and compares the post with it.
            draft = draft_of(obj)
            if draft is not None:
                for name, value in draft_values(draft).items():
                    setattr(obj, name, value)
        return obj

    def draft_context(self, request, obj) -> dict:
        request._mailroom_editing = True
        draft = draft_of(obj) if obj is not None else None
        return {
            "draft": draft,
            "draft_diffs": versions.draft_diffs(obj, draft)[2] if draft is not None else [],
            "may_publish": self.has_publish_permission(request),
            "is_template": self.model is Template,
        }

    def save_new(self, request, obj, form):
        """A new object: saved as it is (nothing uses it yet); a draft only where needed."""
        VersionedAdmin.save_model(self, request, obj, form, False)
        return None

    def save_model(self, request, obj, form, change):
        if not change:
            draft = self.save_new(request, obj, form)
        else:
            row = type(obj).objects.get(pk=obj.pk)
            if any(getattr(row, name) != getattr(obj, name) for name in self.own_fields):
                for name in self.own_fields:
                    setattr(row, name, getattr(obj, name))
                row.save()
            values = draft_values(obj)
            draft = draft_of(row)
            if draft is None and values == draft_values(row):
                return
            draft = draft_save(row, values, user=request.user)
        if draft is not None:
            self.message_user(
                request,
                f"Saved as draft revision {draft.revision}. Emails keep using the published "
                "version until the draft is published.",
                level=messages.WARNING,
            )


@admin.register(Template)
class TemplateAdmin(DraftedAdmin):
    form = TemplateForm
    history_list_display = ["version", "subject"]
    list_display = (
        "usage_type",
        "locale",
        "scope",
        "subject",
        "enabled",
        "live",
        "has_draft",
        "has_text_body",
        "updated_at",
    )
    list_display_links = ("usage_type", "locale")
    list_filter = (
        ScopeFilter,
        ApplicationFilter,
        OrganizationFilter,
        "usage_type",
        "locale",
        "enabled",
    )
    search_fields = ("subject", "html_body", "text_body", "application_id", "organization_id")
    actions = ["share_preview", "restore_default", "export"]
    own_fields = ("usage_type", "locale", "application_id", "organization_id", "enabled")
    fieldsets = (
        (None, {"fields": ("usage_type", "locale", "enabled", "layout")}),
        (
            "Scope",
            {
                "fields": ("application_id", "organization_id"),
                "description": "Blank: every application and organization. A message of the "
                "application or organization named here gets this template in this language "
                "(the organization's before the application's); in other languages, the "
                "unscoped ones.",
            },
        ),
        ("Content", {"fields": ("subject", "preheader", "html_body", "text_body")}),
        ("Sender", {"fields": ("from_email", "reply_to"), "classes": ("collapse",)}),
    )

    @admin.display(description="scope", ordering="organization_id")
    def scope(self, template):
        return "" if template.scope_label == "any" else template.scope_label

    @admin.display(boolean=True, description="own text")
    def has_text_body(self, template):
        return bool(template.text_body.strip())

    @admin.display(boolean=True, description="published")
    def live(self, template):
        return template.published_at is not None

    @admin.display(boolean=True, description="draft")
    def has_draft(self, template):
        return template.draft_exists

    def get_queryset(self, request):
        drafts = TemplateDraft.objects.filter(template=OuterRef("pk"))
        return super().get_queryset(request).annotate(draft_exists=Exists(drafts))

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.may_publish = self.has_publish_permission(request)  # a class of its own per call
        return form

    def save_new(self, request, obj, form):
        obj.published_at = None  # a new template serves nothing until published
        VersionedAdmin.save_model(self, request, obj, form, False)
        return draft_save(obj, draft_values(obj), user=request.user)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("preview/", view(editor.preview), name="emails_template_preview"),
            path("preview/html/", view(editor.preview_html), name="emails_template_preview_html"),
            path("test-send/", view(editor.test_send), name="emails_template_test_send"),
            path(
                "<int:object_id>/test-send/",
                view(editor.test_send),
                name="emails_template_test_send",
            ),
            path(
                "test-send/<uuid:message_id>/status/",
                view(editor.test_send_status),
                name="emails_template_test_send_status",
            ),
            path("<int:object_id>/share/", view(editor.share), name="emails_template_share"),
            path(
                "<int:object_id>/rendered/",
                view(editor.saved_html),
                name="emails_template_rendered",
            ),
            path(
                "<int:object_id>/translate/",
                view(partial(publishing.translate, model_admin=self)),
                name="emails_template_translate",
            ),
            path(
                "translate/",
                view(partial(publishing.translate_all, model_admin=self)),
                name="emails_template_translate_all",
            ),
            path("gallery/share/", view(editor.share), name="emails_template_share_gallery"),
            path(
                "coverage/",
                view(partial(coverage.coverage, model_admin=self)),
                name="emails_template_coverage",
            ),
            path(
                "import/",
                view(partial(transfer_views.import_view, model_admin=self)),
                name="emails_template_import",
            ),
            *super().get_urls(),
        ]

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        template = self.get_object(request, object_id) if object_id else None
        usage_type = template.usage_type if template else request.GET.get("usage_type", "")
        drafts = self.draft_context(request, template)
        draft = drafts["draft"]
        source = int_or_none(request.GET.get("source"))
        translation_source = (
            Template.objects.filter(pk=source).exclude(pk=template.pk).first()
            if template and source is not None
            else None
        )
        extra_context = {
            **(extra_context or {}),
            **drafts,
            "translation_source": translation_source,
            "draft_approval": draft_approved(draft) if draft else None,
            "approval_required": settings.EMAILS_PUBLISH_REQUIRES_APPROVAL,
            "published_at": template.published_at if template else None,
            "samples": _all_samples(request),
            "siblings": Template.objects.filter(
                usage_type=usage_type,
                application_id=template.application_id if template else "",
                organization_id=template.organization_id if template else "",
            ).only("pk", "locale")
            if usage_type
            else [],
            "usage_type": usage_type,
            "comments": _comments_on(template)[:20] if template else [],
            "preview_url": reverse("admin:emails_template_preview"),
            "preview_html_url": reverse("admin:emails_template_preview_html"),
            "test_send_url": reverse("admin:emails_template_test_send", args=[object_id])
            if object_id
            else reverse("admin:emails_template_test_send"),
            "share_url": reverse("admin:emails_template_share", args=[object_id])
            if object_id
            else "",
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    @admin.action(
        description="Restore the shipped default content (published at once)",
        permissions=["publish"],
    )
    def restore_default(self, request, queryset):
        if settings.EMAILS_PUBLISH_REQUIRES_APPROVAL:
            self.message_user(
                request,
                "Publishing needs an approval (EMAILS_PUBLISH_REQUIRES_APPROVAL): restoring the "
                "shipped default would skip it. Revert to the shipped version in the template's "
                "history instead: that makes it the draft, for review.",
                level=messages.ERROR,
            )
            return
        restored = sum(restore_default(template) for template in queryset)
        self.message_user(request, f"Restored {restored} template(s) to the shipped default.")
        if restored < queryset.count():
            self.message_user(
                request,
                f"{queryset.count() - restored} have no shipped default (their locale is not "
                "one of Logto's built-in languages).",
                level=messages.WARNING,
            )

    @admin.action(description="Export the selected templates (zip, with their layouts)")
    def export(self, request, queryset):
        layouts = Layout.objects.filter(templates__in=queryset).distinct()
        return transfer_views.export_response(queryset.select_related("layout"), layouts)

    @admin.action(description="Share preview links for the selected templates' usage types")
    def share_preview(self, request, queryset):
        """A link per usage type and scope of the chosen templates."""
        chosen = queryset.values_list("usage_type", "application_id", "organization_id")
        for usage_type, application_id, organization_id in sorted(set(chosen)):
            link = preview_link_create(
                usage_type=usage_type,
                created_by=request.user,
                application_id=application_id,
                organization_id=organization_id,
            )
            url = editor.preview_link_url(request, link)
            shown = (
                f"{usage_type} for {link.scope_label}" if link.scope_label != "any" else usage_type
            )
            self.message_user(
                request, format_html("Preview of {}: <a href='{}'>{}</a>", shown, url, url)
            )


@admin.register(Layout)
class LayoutAdmin(DraftedAdmin):
    form = LayoutForm
    own_fields = ("name", "application_id", "organization_id")
    list_display = ("name", "scope", "template_count", "has_draft", "updated_at")
    list_filter = (ScopeFilter, ApplicationFilter, OrganizationFilter)
    search_fields = ("name", "html", "application_id", "organization_id")

    @admin.display(description="scope")
    def scope(self, layout):
        return "" if layout.scope_label == "any" else layout.scope_label

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("preview/", view(editor.layout_preview), name="emails_layout_preview"),
            path(
                "preview/html/",
                view(editor.layout_preview_html),
                name="emails_layout_preview_html",
            ),
            *super().get_urls(),
        ]

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """The live preview: the unsaved layout around one of its templates (or any)."""
        layout = self.get_object(request, object_id) if object_id else None
        shown = layout.templates.all() if layout is not None else Template.objects.none()
        if not shown.exists():
            shown = Template.objects.all()
        extra_context = {
            **(extra_context or {}),
            **self.draft_context(request, layout),
            **_surround_context(request, shown, "layout"),
            "preview_fields": "html text",
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    @admin.display(description="templates")
    def template_count(self, layout):
        return layout.templates.count()

    @admin.display(boolean=True, description="draft")
    def has_draft(self, layout):
        return layout.draft_exists

    def get_queryset(self, request):
        drafts = LayoutDraft.objects.filter(layout=OuterRef("pk"))
        return super().get_queryset(request).annotate(draft_exists=Exists(drafts))


@admin.register(Brand)
class BrandAdmin(admin.ModelAdmin):
    """One row of brand settings: the list goes straight to it."""

    form = BrandForm

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("preview/", view(editor.brand_preview), name="emails_brand_preview"),
            path(
                "preview/html/", view(editor.brand_preview_html), name="emails_brand_preview_html"
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        brand, _ = Brand.objects.get_or_create(pk=1)
        return redirect("admin:emails_brand_change", brand.pk)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            **_surround_context(request, Template.objects.all(), "brand"),
            "preview_fields": " ".join(BRAND_FIELDS),
            "public_url": settings.EMAILS_PUBLIC_URL,
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    def response_change(self, request, obj):
        self.message_user(request, "Brand settings saved: emails use them within a few seconds.")
        return redirect("admin:emails_brand_change", obj.pk)


@admin.register(PreviewLink)
class PreviewLinkAdmin(admin.ModelAdmin):
    list_display = ("__str__", "created_by", "created_at", "expires_at", "revoked_at", "active")
    list_filter = ("usage_type",)
    readonly_fields = ("usage_type", "created_by", "created_at", "expires_at", "revoked_at")
    actions = ["revoke"]

    @admin.display(boolean=True)
    def active(self, link):
        return link.is_active

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected preview links")
    def revoke(self, request, queryset):
        count = preview_links_revoke(queryset)
        self.message_user(request, f"Revoked {count} preview link(s).")


@admin.register(PreviewComment)
class PreviewCommentAdmin(admin.ModelAdmin):
    """What designers said on their preview links: who (the name they typed), which link,
    when, and on which email. Read-only: comments are the designers' words."""

    list_display = (
        "created_at",
        "usage_type",
        "locale",
        "name",
        "short_body",
        "approves",
        "draft_revision",
        "on_edits",
        "link",
    )
    list_filter = ("usage_type", "locale", "approves", "on_edits")
    search_fields = ("name", "body")
    readonly_fields = (
        "link",
        "template",
        "usage_type",
        "locale",
        "on_edits",
        "draft_revision",
        "approves",
        "name",
        "body",
        "created_at",
    )

    @admin.display(description="comment")
    def short_body(self, comment):
        return comment.body if len(comment.body) <= 80 else comment.body[:79] + "…"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class MessageEventInline(admin.TabularInline):
    """The message's timeline: failed tries and the provider's tracking events."""

    model = MessageEvent
    fields = (
        "occurred_at",
        "event_type",
        "provider",
        "description",
        "provider_response",
        "event_id",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


# Never shown: the payload carries verification codes and links; the dedup key is derived
# from them; test content may carry a sample code.
HIDDEN_MESSAGE_FIELDS = ("payload", "dedup_key", "test_content")


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Read-only log of what Logto asked for and what became of it."""

    list_display = (
        "created_at",
        "to",
        "usage_type",
        "template_link",
        "template_locale",
        "used_fallback",
        "status",
        "delivery_status",
        "attempts",
        "provider",
        "provider_message_id",
        "sent_at",
        "short_error",
        "is_test",
    )
    list_filter = (
        "status",
        "delivery_status",
        UsageTypeFilter,
        "used_fallback",
        ProviderFilter,
        "is_test",
        "created_at",
    )
    # At millions of rows (emails/backoffice/message_list.py): a bounded count, no facet
    # counts, exact searches, sorting only by the indexed time, and no date hierarchy (its
    # year links are a DISTINCT over the table; the "created at" filter gives the ranges).
    paginator = BoundedCountPaginator
    list_max_show_all = 100  # "Show all" only for what one page shows anyway
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a COUNT per filter choice
    search_fields = ("to",)  # shows the search box; get_search_results does the search
    search_help_text = SEARCH_HELP
    sortable_by = ("created_at",)
    exclude = HIDDEN_MESSAGE_FIELDS
    readonly_fields = [
        field.name for field in Message._meta.fields if field.name not in HIDDEN_MESSAGE_FIELDS
    ]
    inlines = [MessageEventInline]
    actions = ["resend"]

    @admin.display(description="template")
    def template_link(self, message):
        if message.template_id is None:
            return "—"
        url = reverse("admin:emails_template_change", args=[message.template_id])
        return format_html(
            "<a href='{}'>{} · {}</a>", url, message.template_usage_type, message.template_locale
        )

    @admin.display(description="error")
    def short_error(self, message):
        return (message.error[:80] + "…") if len(message.error) > 80 else message.error

    def get_search_results(self, request, queryset, search_term):
        return message_search(queryset, search_term), False

    def get_changelist(self, request, **kwargs):
        return MessageChangeList

    def get_actions(self, request):
        # Deleting a selection loads every selected row and its events first: with "select
        # all" at millions of messages, that is the process's memory. The retention purge
        # deletes old messages in batches.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "delivery/",
                view(partial(dashboard.delivery, model_admin=self)),
                name="emails_message_delivery",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        # Without beat nothing expires dead codes or hands out stuck messages: say so where
        # an operator looks at delivery.
        if late := sweeper_late():
            self.message_user(request, late, level=messages.WARNING)
        for circuit in open_circuits():
            self.message_user(request, circuit_banner(circuit), level=messages.WARNING)
        return super().changelist_view(request, extra_context)

    def has_resend_permission(self, request):
        return request.user.has_perm("emails.change_message")

    @admin.action(description="Resend the selected failed messages", permissions=["resend"])
    def resend(self, request, queryset):
        queued, skipped = messages_resend(queryset.filter(status=MessageStatus.FAILED))
        self.message_user(request, f"Queued {queued} message(s) again.")
        if skipped:
            self.message_user(
                request,
                f"{skipped} could not be resent: their code has expired (or their secrets were "
                "wiped). The user has to ask Logto for a new one.",
                level=messages.WARNING,
            )


def circuit_banner(circuit: ProviderCircuit) -> str:
    since = f"{circuit.opened_at:%Y-%m-%d %H:%M:%S} UTC" if circuit.opened_at else "a moment ago"
    others = [name for name in settings.EMAIL_PROVIDERS if name != circuit.provider]
    error = circuit.last_error.splitlines()[0] if circuit.last_error else "none recorded"
    return (
        f"Provider {circuit.provider} is failing over since {since}: its emails go to "
        f"{', '.join(others)}. {settings.EMAILS_FAILOVER_COOLDOWN:.0f} s after it opened (and "
        f"after each failed probe), the next email that reaches it probes it. Last error: {error}"
    )


@admin.register(ProviderCircuit)
class ProviderCircuitAdmin(admin.ModelAdmin):
    """The providers of a failover list (EMAIL_PROVIDER=a,b,...): which one sends, and why
    not. Read-only; "Close" sends to a provider again at once (after fixing its settings)."""

    list_display = (
        "position",
        "provider",
        "state_shown",
        "consecutive_failures",
        "opened_at",
        "short_error",
        "last_error_at",
        "sent",
        "failures",
        "refusals",
        "times_opened",
    )
    list_display_links = ("provider",)
    readonly_fields = [field.name for field in ProviderCircuit._meta.fields]
    actions = ["close"]

    def get_queryset(self, request):
        if not failover_enabled():
            return ProviderCircuit.objects.none()
        from emails.delivery.circuits import circuits

        circuits()  # a row for every configured provider
        return super().get_queryset(request).filter(provider__in=list(settings.EMAIL_PROVIDERS))

    def get_ordering(self, request):
        names = list(settings.EMAIL_PROVIDERS)  # EMAIL_PROVIDER's order
        return [Case(*(When(provider=name, then=Value(i)) for i, name in enumerate(names))).asc()]

    def changelist_view(self, request, extra_context=None):
        if not failover_enabled():
            self.message_user(
                request,
                f"One provider is configured (EMAIL_PROVIDER={settings.EMAIL_PROVIDER}): no "
                "failover, so no circuit. A failed send is retried with backoff. List several "
                "to fail over, e.g. EMAIL_PROVIDER=postmark,amazon_ses (README, Failover).",
                level=messages.INFO,
            )
        return super().changelist_view(request, extra_context)

    @admin.display(description="#")
    def position(self, circuit):
        return list(settings.EMAIL_PROVIDERS).index(circuit.provider) + 1

    @admin.display(description="state")
    def state_shown(self, circuit):
        return CircuitState(circuit.state).label

    @admin.display(description="last error")
    def short_error(self, circuit):
        first = circuit.last_error.splitlines()[0] if circuit.last_error else ""
        return (first[:100] + "…") if len(first) > 100 else first

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # the change form is read-only; closing is an action of its own

    def has_close_permission(self, request):
        return request.user.has_perm("emails.change_providercircuit")

    @admin.action(
        description="Close the selected circuits: send to them again now", permissions=["close"]
    )
    def close(self, request, queryset):
        count = circuits_close(list(queryset.values_list("provider", flat=True)))
        self.message_user(request, f"Closed {count} circuit(s).")
