import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, URLValidator, validate_email
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from simple_history.models import HistoricalRecords

from emails.locales import MAX_TAG_LENGTH, normalize_locale
from emails.logto import SECRET_PAYLOAD_KEYS, UsageType


def validate_locale(value: str) -> None:
    try:
        normalize_locale(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def validate_sender(value: str) -> None:
    """A single address, optionally with a display name: ``Acme <no-reply@acme.example>``."""
    from email.utils import parseaddr

    if any(char in value for char in "\r\n"):
        raise ValidationError("must be on one line")
    _, address = parseaddr(value)
    try:
        validate_email(address)
    except ValidationError:
        raise ValidationError("must be an address, e.g. Acme <no-reply@acme.example>") from None


def normalize_newlines(text: str) -> str:
    """One line ending, ``\n``: browsers submit textareas with ``\r\n``, and Windows editors
    write files so. Otherwise an untouched template saved once reads as edited (history,
    ``sync_default_templates``) and exports carry ``\r\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


# Logto's ids: nanoids today (21 characters of [a-z0-9]); allow what an id could grow into.
LOGTO_ID = RegexValidator(
    r"^[A-Za-z0-9._-]{1,128}\Z", "a Logto id: letters, digits, '.', '_' or '-' (at most 128)"
)


def validate_from_domain(value: str) -> None:
    """A from address's domain must be one EMAILS_ALLOWED_FROM_DOMAINS lists, when it is set
    (a domain the provider has not verified makes every email bounce or land in spam)."""
    from email.utils import parseaddr

    allowed = settings.EMAILS_ALLOWED_FROM_DOMAINS
    if not allowed:
        return
    domain = parseaddr(value)[1].rpartition("@")[2].lower()
    if domain not in allowed:
        raise ValidationError(
            f"{domain or 'that'} is not a sending domain here; allowed: {', '.join(allowed)}"
        )


class Scoped(models.Model):
    """Who a row is for: one Logto application and/or one organization (their ids as Logto
    sends them in ``payload.application.id`` and ``payload.organization.id``); blank: any."""

    application_id = models.CharField(
        "application",
        max_length=128,
        blank=True,
        default="",
        validators=[LOGTO_ID],
        help_text="A Logto application id; blank: every application.",
    )
    organization_id = models.CharField(
        "organization",
        max_length=128,
        blank=True,
        default="",
        validators=[LOGTO_ID],
        help_text="A Logto organization id; blank: every organization (and none).",
    )

    class Meta:
        abstract = True

    @property
    def scope_label(self) -> str:
        return scope_label(self.application_id, self.organization_id)


def scope_label(application_id: str, organization_id: str) -> str:
    parts = [f"application {application_id}"] if application_id else []
    parts += [f"organization {organization_id}"] if organization_id else []
    return " + ".join(parts) or "any"


class Layout(Scoped):
    """A shared HTML wrapper (header with the logo, footer with company information) around
    the templates that use it: ``{{ content }}`` is where a template's body goes. Publishing
    an edit of a layout (its draft, LayoutDraft) changes every email that uses it."""

    name = models.CharField(max_length=100, unique=True)
    html = models.TextField(
        "HTML", help_text="Django template; {{ content }} is the template's HTML body."
    )
    text = models.TextField(
        "plain text",
        blank=True,
        default="{{ content }}",
        help_text="Wraps the plain-text part; {{ content }} is the template's text.",
    )
    default_checksum = models.CharField(max_length=64, blank=True, editable=False)
    draft_revisions = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="Draft revisions ever made: a new one is numbered after all of them.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(excluded_fields=["updated_at", "draft_revisions"])

    class Meta:
        ordering = ["name"]
        permissions = [("publish_layout", "Can publish a layout's draft")]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        # Every way in (admin, API, import, sync) ends here: one line ending.
        self.html, self.text = normalize_newlines(self.html), normalize_newlines(self.text)
        super().save(*args, **kwargs)


LAYOUT_DRAFT_FIELDS = ("html", "text")


class Draft(models.Model):
    """What every draft keeps besides its content: its revision and who saved it when."""

    revision = models.PositiveIntegerField(
        default=1, help_text="Counts the draft's saves: an approval is of one revision."
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class LayoutDraft(Draft):
    """The one working draft of a layout: what the admin saves. Every email keeps the
    layout's published HTML until someone with ``emails.publish_layout`` publishes this."""

    layout = models.OneToOneField(Layout, on_delete=models.CASCADE, related_name="draft")
    html = models.TextField("HTML")
    text = models.TextField("plain text", blank=True)

    def __str__(self):
        return f"Draft of {self.layout} (revision {self.revision})"

    def save(self, *args, **kwargs):
        self.html, self.text = normalize_newlines(self.html), normalize_newlines(self.text)
        super().save(*args, **kwargs)


TEMPLATE_TEXT_FIELDS = ("subject", "preheader", "html_body", "text_body")


class Template(Scoped):
    usage_type = models.CharField(max_length=32, choices=UsageType.choices)
    locale = models.CharField(
        max_length=MAX_TAG_LENGTH,
        validators=[validate_locale],
        help_text="BCP 47 language tag, e.g. en, pt-BR, zh-Hant-TW. Case is normalised on save.",
    )
    subject = models.CharField(max_length=500)
    preheader = models.CharField(
        max_length=300,
        blank=True,
        help_text="Preview text shown by mail clients after the subject (hidden in the email).",
    )
    layout = models.ForeignKey(
        Layout,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="templates",
        help_text="Blank: the HTML body is the whole email.",
    )
    html_body = models.TextField("HTML body")
    text_body = models.TextField(
        "plain-text body", blank=True, help_text="Leave blank to derive it from the HTML body."
    )
    enabled = models.BooleanField(default=True)
    from_email = models.CharField(
        "from",
        max_length=320,
        blank=True,
        validators=[validate_sender, validate_from_domain],
        help_text="Blank: the scope's sender profile, else DEFAULT_FROM_EMAIL.",
    )
    reply_to = models.EmailField(blank=True)
    default_checksum = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="Checksum of the shipped default this was loaded from: tells an edit apart.",
    )
    version = models.PositiveIntegerField(default=1, editable=False)
    draft_revisions = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="Draft revisions ever made: a new one is numbered after all of them.",
    )
    published_at = models.DateTimeField(
        null=True,
        blank=True,
        default=timezone.now,
        editable=False,
        help_text="When its content was last published; never (blank): it serves no email.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(excluded_fields=["updated_at", "draft_revisions"])

    class Meta:
        ordering = ["usage_type", "locale", "application_id", "organization_id"]
        permissions = [("publish_template", "Can publish a template's draft")]
        constraints = [
            models.UniqueConstraint(
                fields=["usage_type", "locale", "application_id", "organization_id"],
                name="emails_template_type_locale_scope_uniq",
            ),
        ]

    def __str__(self):
        scope = self.scope_label
        return f"{self.usage_type} · {self.locale}" + ("" if scope == "any" else f" · {scope}")

    def save(self, *args, **kwargs):
        # Lookups compare normalised tags, so the stored tag must be normalised too.
        self.locale = normalize_locale(self.locale)
        # Every way in (admin, API, import, sync) ends here: one line ending.
        for name in TEMPLATE_TEXT_FIELDS:
            setattr(self, name, normalize_newlines(getattr(self, name)))
        if self.pk is not None and not kwargs.get("force_insert"):
            self.version += 1  # each save is a version; messages record which rendered them
        super().save(*args, **kwargs)

    def clean(self):
        # The content is checked against Logto's payload by emails.content.clean (the admin's
        # forms, imports and the API call it); the model knows only its own fields.
        if self.locale:
            try:
                self.locale = normalize_locale(self.locale)
            except ValueError as exc:
                raise ValidationError({"locale": str(exc)}) from None


class MessageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


FINAL_STATUSES = (MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.EXPIRED)


class DeliveryStatus(models.TextChoices):
    """What the provider reported afterwards, through anymail's tracking webhooks."""

    DEFERRED = "deferred", "Deferred"
    DELIVERED = "delivered", "Delivered"
    BOUNCED = "bounced", "Bounced"
    REJECTED = "rejected", "Rejected"
    COMPLAINED = "complained", "Complained"


class Message(models.Model):
    """One email Logto asked for. The record is the source of truth: it is committed before
    Logto hears 200, and the worker moves it queued -> sending -> sent/failed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    to = models.CharField(max_length=254)
    usage_type = models.CharField(max_length=64, help_text="The type as Logto sent it.")
    payload = models.JSONField()
    ip = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=MessageStatus.choices, default=MessageStatus.QUEUED
    )
    template = models.ForeignKey(
        Template, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    template_usage_type = models.CharField(max_length=32, help_text="Usage type that served it.")
    template_locale = models.CharField(
        max_length=MAX_TAG_LENGTH, help_text="Locale that served it."
    )
    template_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="The template's version that rendered it."
    )
    requested_locale = models.CharField(max_length=MAX_TAG_LENGTH, blank=True)
    locale_matched = models.CharField(
        max_length=MAX_TAG_LENGTH,
        blank=True,
        help_text="The tag the served locale matched: payload.locale, a uiLocales tag or the "
        "default locale.",
    )
    # Not Positive...: its CHECK would make adding the column scan the whole table.
    locale_distance = models.SmallIntegerField(
        null=True,
        blank=True,
        help_text="CLDR language distance between that tag and the served locale (0: same).",
    )
    # A database default too: web processes still running the code from before the
    # migration insert without the column.
    template_scope = models.CharField(
        max_length=32,
        blank=True,
        default="",
        db_default="",
        help_text="The scope of the template that served it: application, organization, "
        "application+organization, or blank (any).",
    )
    used_fallback = models.BooleanField(
        default=False,
        help_text="Served by another locale or by the Generic template instead of the one asked.",
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Times a worker claimed it, including tries cut short by a crash."
    )
    next_attempt_at = models.DateTimeField(
        default=timezone.now, help_text="Not claimed before this (retry backoff)."
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="For a verification code: when it is dead."
    )
    dedup_key = models.CharField(  # noqa: DJ001  (NULL: no key; the unique index skips NULLs)
        max_length=64,
        null=True,
        blank=True,
        editable=False,
        help_text="Keyed hash of recipient, type, code and link; cleared after the code TTL.",
    )
    provider = models.CharField(
        max_length=32,
        blank=True,
        help_text="The provider (EMAIL_PROVIDER name) that sent it, or that its last try used.",
    )
    provider_message_id = models.CharField(max_length=255, blank=True)
    pinned_provider = models.CharField(
        max_length=32,
        blank=True,
        help_text="A try on this provider timed out after the email left, and "
        "EMAILS_FAILOVER_ON_TIMEOUT keeps the email with it: no other provider sends it.",
    )
    possible_duplicates = models.PositiveSmallIntegerField(
        default=0,
        help_text="Tries that timed out after the email went out: it may have arrived this "
        "many more times (see the timeline).",
    )
    error = models.TextField(blank=True)
    delivery_status = models.CharField(max_length=16, choices=DeliveryStatus.choices, blank=True)
    delivery_status_at = models.DateTimeField(null=True, blank=True)
    is_test = models.BooleanField(
        "test send", default=False, help_text="Sent from the admin with unsaved content."
    )
    test_content = models.JSONField(
        null=True,
        blank=True,
        editable=False,
        help_text="For a test send: the subject and bodies to render instead of the template's.",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # a partial index below: only test sends have one
        help_text="For a test send: who sent it.",
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        # Every index costs each accepting INSERT, so each one here serves a query, and the
        # ones only some rows need are partial (declared here, not with unique/db_index on
        # the field, so PostgreSQL gets no extra varchar_pattern_ops copy for LIKE).
        indexes = [
            # The claim, the relay and the sweeper.
            models.Index(fields=["status", "next_attempt_at"], name="emails_message_status_idx"),
            # Rate limits (intake/ratelimit.py): recent messages per recipient and per IP.
            models.Index(Lower("to"), "created_at", name="emails_message_to_recent_idx"),
            models.Index(
                fields=["ip", "created_at"],
                name="emails_message_ip_recent_idx",
                condition=~Q(ip=""),
            ),
            # Tracking webhooks find a message by the provider's id, once it has one.
            models.Index(
                fields=["provider_message_id"],
                name="emails_message_provider_idx",
                condition=~Q(provider_message_id=""),
            ),
            models.Index(
                fields=["requested_by"],
                name="emails_message_requester_idx",
                condition=Q(requested_by__isnull=False),
            ),
            # The admin's message list at millions of rows (docs/benchmarks.md): its rare
            # filters, newest first. No accepted email is in either (nor pays for them).
            models.Index(
                fields=["delivery_status", "created_at"],
                name="emails_message_problem_idx",
                condition=~Q(delivery_status__in=["", DeliveryStatus.DELIVERED]),
            ),
            models.Index(
                fields=["created_at"], name="emails_message_test_idx", condition=Q(is_test=True)
            ),
            # The provider filter: a provider of the failover list may have sent nothing for
            # weeks. Set when a send is tried, so accepts do not pay for it.
            models.Index(
                fields=["provider", "created_at"],
                name="emails_message_sent_by_idx",
                condition=~Q(provider=""),
            ),
            # Coverage's fallback counts, read from the index alone; only an email served by
            # fallback pays for it when accepted.
            models.Index(
                fields=["created_at"],
                include=[
                    "usage_type",
                    "requested_locale",
                    "template_locale",
                    "locale_distance",
                    "is_test",
                ],
                name="emails_message_fallback_idx",
                condition=Q(used_fallback=True),
            ),
            # The sweeper's wipe of failed messages' codes and links: the few that have one.
            models.Index(
                fields=["created_at"],
                name="emails_message_secrets_idx",
                condition=Q(status=MessageStatus.FAILED, payload__has_any_keys=SECRET_PAYLOAD_KEYS),
            ),
        ]
        constraints = [
            # Two identical requests at once are one email (intake/accept.py).
            models.UniqueConstraint(fields=["dedup_key"], name="emails_message_dedup_key_uniq"),
        ]

    def __str__(self):
        return f"{self.usage_type} to {self.to} ({self.status})"


class MessageEvent(models.Model):
    """One tracking event from the provider (anymail's normalised event), stored once."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="events")
    event_id = models.CharField(max_length=255, help_text="The provider's id for this event.")
    event_type = models.CharField(max_length=32)
    provider = models.CharField(
        max_length=32, blank=True, help_text="The provider tried, or that reported the event."
    )
    occurred_at = models.DateTimeField()
    description = models.TextField(blank=True)
    provider_response = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["event_id"], name="emails_messageevent_event_uniq"),
        ]

    def __str__(self):
        return f"{self.event_type} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


def _new_nonce() -> str:
    return secrets.token_urlsafe(16)


def _default_preview_expiry():
    return timezone.now() + timedelta(days=settings.EMAILS_PREVIEW_LINK_DAYS)


class PreviewLink(Scoped):
    """A login-free, read-only, expiring, revocable link for designers: every locale of one
    usage type, or (usage type blank) the gallery of all; with a scope, the emails that
    application's or organization's users get (its own templates, else the unscoped ones),
    with its brand. The URL carries a signed token of id and nonce; the nonce never leaves
    the database otherwise."""

    usage_type = models.CharField(
        max_length=32,
        choices=UsageType.choices,
        blank=True,
        help_text="Blank: the gallery of every usage type and locale.",
    )
    nonce = models.CharField(max_length=32, default=_new_nonce, editable=False)
    # A link to edits that were not saved: the editor's content when the link was made
    # (subject, html, text, preheader, layout_id), shown as the template it came from.
    template = models.ForeignKey(
        "Template", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    locale = models.CharField(max_length=MAX_TAG_LENGTH, blank=True)
    content = models.JSONField(
        null=True,
        blank=True,
        editable=False,
        help_text="Unsaved edits this link shows; empty: the saved templates.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(default=_default_preview_expiry)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        if self.content is not None:
            return f"Preview of unsaved edits to {self.usage_type} · {self.locale}"
        return f"Preview of {self.usage_type or 'all templates'}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


# What a draft holds: the content of the email. The usage type, locale and enabled switch are
# the template's, and apply when saved.
DRAFT_FIELDS = (*TEMPLATE_TEXT_FIELDS, "layout", "from_email", "reply_to")


class TemplateDraft(Draft):
    """The one working draft of a template: what the admin saves. Emails use the template's
    published content until someone with ``emails.publish_template`` publishes this."""

    template = models.OneToOneField(Template, on_delete=models.CASCADE, related_name="draft")
    subject = models.CharField(max_length=500)
    preheader = models.CharField(max_length=300, blank=True)
    layout = models.ForeignKey(
        Layout, null=True, blank=True, on_delete=models.PROTECT, related_name="drafts"
    )
    html_body = models.TextField("HTML body")
    text_body = models.TextField("plain-text body", blank=True)
    from_email = models.CharField(
        "from", max_length=320, blank=True, validators=[validate_sender, validate_from_domain]
    )
    reply_to = models.EmailField(blank=True)

    def __str__(self):
        return f"Draft of {self.template} (revision {self.revision})"

    def save(self, *args, **kwargs):
        for name in TEMPLATE_TEXT_FIELDS:
            setattr(self, name, normalize_newlines(getattr(self, name)))
        super().save(*args, **kwargs)


class PreviewComment(models.Model):
    """A designer's comment on one email of a preview link, for that template's editors (the
    template's change page and the admin's list). Written by whoever holds the link: the name
    is the one they typed, the link says which link they used."""

    MAX_NAME = 100
    MAX_BODY = 2000
    MAX_PER_LINK = 500
    MAX_PER_HOUR = 30  # per link

    link = models.ForeignKey(
        PreviewLink, null=True, on_delete=models.SET_NULL, related_name="comments"
    )
    template = models.ForeignKey(
        "Template", null=True, blank=True, on_delete=models.SET_NULL, related_name="comments"
    )
    usage_type = models.CharField(max_length=32, choices=UsageType.choices)
    locale = models.CharField(max_length=MAX_TAG_LENGTH)
    on_edits = models.BooleanField(
        default=False, help_text="Made on unsaved edits shared by link, not the saved template."
    )
    name = models.CharField(max_length=MAX_NAME)
    body = models.TextField(max_length=MAX_BODY, blank=True)
    draft_revision = models.PositiveIntegerField(
        null=True, blank=True, help_text="The template's draft revision the link showed."
    )
    approves = models.BooleanField(
        default=False, help_text="The reviewer approved that draft revision for publishing."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["template", "-created_at"], name="comment_template_idx")]

    def __str__(self):
        return f"{self.name} on {self.usage_type} · {self.locale}"


def validate_support_link(value: str) -> None:
    """An https:// (or http://) URL, or mailto: and one address."""
    if value.startswith("mailto:"):
        try:
            validate_email(value.removeprefix("mailto:"))
        except ValidationError:
            raise ValidationError(
                "mailto: needs one address, e.g. mailto:help@acme.example"
            ) from None
        return
    URLValidator(schemes=["https", "http"], message="a link starting https:// or mailto:")(value)


ACCENT_COLOR = RegexValidator(r"^#[0-9a-fA-F]{6}$", "a colour as #rrggbb, e.g. #5d34f2")


class BrandFields(models.Model):
    """What a brand says: the global brand settings (Brand) and one application's or
    organization's (ScopeBrand)."""

    product_name = models.CharField(max_length=100, blank=True)
    logo = models.FileField(
        upload_to="brand/",
        blank=True,
        max_length=200,
        help_text="PNG, JPEG, GIF or WebP, at most 512 KB; stored with Django's storage.",
    )
    accent_color = models.CharField(
        max_length=7,
        blank=True,
        validators=[ACCENT_COLOR],
        help_text="#rrggbb: the top bar of the shipped layout's card.",
    )
    footer_text = models.TextField(max_length=1000, blank=True)
    support_url = models.CharField(
        "support link",
        max_length=300,
        blank=True,
        validators=[validate_support_link],
        help_text="Where the footer's help link goes: https://… or mailto:…",
    )
    legal_address = models.TextField(
        max_length=500, blank=True, help_text="Company name and address for the footer."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Brand(BrandFields):
    """The brand every layout shows, edited in the admin (one row). A blank field falls back
    to its setting (EMAILS_BRAND_NAME, EMAILS_BRAND_LOGO_URL, EMAILS_COMPANY_INFO); Logto's
    application and organization branding in a payload still come first for name and logo,
    and an application's or organization's own brand (ScopeBrand) before that."""

    class Meta:
        verbose_name = "brand settings"
        verbose_name_plural = "brand settings"

    def __str__(self):
        return "Brand settings"


SCOPE_GIVEN = ~Q(application_id="", organization_id="")


class ScopeBrand(Scoped, BrandFields):
    """One application's or organization's brand: each field it sets comes before Logto's
    branding in the payload and the global brand settings; a blank one falls through."""

    class Meta:
        ordering = ["application_id", "organization_id"]
        verbose_name = "brand of an application or organization"
        verbose_name_plural = "brands of applications and organizations"
        constraints = [
            models.UniqueConstraint(
                fields=["application_id", "organization_id"], name="emails_scopebrand_scope_uniq"
            ),
            models.CheckConstraint(condition=SCOPE_GIVEN, name="emails_scopebrand_scoped"),
        ]

    def __str__(self):
        return f"Brand of {self.scope_label}"


class SenderProfile(Scoped):
    """The sender of one application's or organization's emails, so that its templates need
    not repeat it: only a template made for its scope that names its own comes first
    (emails.content.scopes.sender_for)."""

    from_name = models.CharField(max_length=100, blank=True)
    from_address = models.EmailField(
        blank=True, validators=[validate_from_domain], help_text="Blank: DEFAULT_FROM_EMAIL's."
    )
    reply_to = models.EmailField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["application_id", "organization_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["application_id", "organization_id"], name="emails_sender_scope_uniq"
            ),
            models.CheckConstraint(condition=SCOPE_GIVEN, name="emails_sender_scoped"),
        ]

    def __str__(self):
        return f"Sender of {self.scope_label}"

    def clean(self):
        if any(char in self.from_name for char in "\r\n"):
            raise ValidationError({"from_name": "must be on one line"})


class SeenScope(models.Model):
    """An application or organization Logto has sent emails for, with the name it sent: what
    the admin offers when an operator scopes a template. Written by the workers, at most
    once per hour per id and process (emails/content/scopes.py)."""

    class Kind(models.TextChoices):
        APPLICATION = "application", "Application"
        ORGANIZATION = "organization", "Organization"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    logto_id = models.CharField(max_length=128)
    name = models.CharField(max_length=200, blank=True)
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["kind", "name", "logto_id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "logto_id"], name="emails_seenscope_uniq"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.name or self.logto_id}"


class PendingImport(models.Model):
    """A file an admin import checked in a dry run, kept for an hour so that "Apply" imports
    exactly it (emails/backoffice/transfer_views.py). Only its uploader may apply it."""

    LIFETIME = timedelta(hours=1)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=255)
    locale = models.CharField(max_length=MAX_TAG_LENGTH, blank=True)
    content = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"Import of {self.name} waiting to be applied"


class Heartbeat(models.Model):
    """When a periodic job last ran (``sweeper``: celery beat's sweep), so that a missing beat
    shows: in the message log, in ``manage.py check --database default``."""

    name = models.CharField(max_length=32, primary_key=True)
    at = models.DateTimeField()

    def __str__(self):
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"


class CircuitState(models.TextChoices):
    CLOSED = "closed", "Closed: sending"
    OPEN = "open", "Open: skipped, the next provider sends"
    HALF_OPEN = "half_open", "Half-open: one email is probing it"


class ProviderCircuit(models.Model):
    """One provider of a failover list (EMAIL_PROVIDER=a,b,...): whether emails go to it, and
    why not. Shared by every worker process and host, and kept across restarts, because it
    is a row (emails/delivery/circuits.py)."""

    provider = models.CharField(max_length=32, primary_key=True)
    state = models.CharField(
        max_length=16, choices=CircuitState.choices, default=CircuitState.CLOSED
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(
        null=True, blank=True, help_text="When it last opened: a probe is due a cooldown later."
    )
    probe_started_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    sent = models.PositiveBigIntegerField(default=0, help_text="Emails it took.")
    failures = models.PositiveBigIntegerField(
        default=0, help_text="Tries that failed because of the provider (outage, timeout, key)."
    )
    refusals = models.PositiveBigIntegerField(
        default=0, help_text="Emails it refused (recipient, content): no failover for those."
    )
    times_opened = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider"]
        verbose_name = "provider"

    def __str__(self):
        return f"{self.provider} ({self.state})"


class DeliveryStat(models.Model):
    """Counts per minute for the admin's Delivery page (emails/delivery/stats.py writes them as
    emails finish, emails/backoffice/dashboard.py reads them), so that a page view reads a
    few thousand rows however big ``emails_message`` is. ``kind`` says what ``key`` is:
    ``status`` (sent, failed, expired), ``latency`` (the upper bound of a delivery-time
    bucket, sent emails), ``reason`` (why failed or expired), ``provider`` (failed tries),
    ``locale`` ("<requested>:<served>", when another locale served it) and ``requested``
    (the requested locale of every finished email). The hourly purge folds minutes into
    quarter hours after 2 hours and into hours after 25, and drops them after 8 days."""

    minute = models.DateTimeField()
    kind = models.CharField(max_length=16)
    key = models.CharField(max_length=80)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["minute", "kind", "key"], name="emails_deliverystat_uniq"
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.key} at {self.minute:%Y-%m-%d %H:%M}: {self.count}"
