"""What an application or organization has of its own besides templates: its sender profile
and its brand (read per process, like the template lists), and the applications and
organizations Logto has sent emails for (what the admin's scope picker offers)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import parseaddr

from django.conf import settings
from django.db import DatabaseError, IntegrityError
from django.utils import timezone

from emails.content.brand import BRAND_FIELDS, logo_url
from emails.content.selectors import scopes_for
from emails.logto import is_logto_id, payload_scope, payload_scope_names
from emails.models import Layout, ScopeBrand, SeenScope, SenderProfile, Template


class _ScopeRows:
    """(application id, organization id) -> row of one model, every row kept per process
    for EMAILS_TEMPLATE_CACHE_SECONDS (there are as many as an operator made: a handful to a
    few thousand). A save in this process applies at once (signals clear it)."""

    def __init__(self, model):
        self._model = model
        self._lock = threading.Lock()
        self._loaded_at = float("-inf")
        self._rows: dict[tuple[str, str], object] = {}

    def get(self) -> dict[tuple[str, str], object]:
        if time.monotonic() - self._loaded_at >= settings.EMAILS_TEMPLATE_CACHE_SECONDS:
            rows = {
                (row.application_id, row.organization_id): row for row in self._model.objects.all()
            }
            with self._lock:
                self._rows, self._loaded_at = rows, time.monotonic()
        return self._rows

    def clear(self) -> None:
        with self._lock:
            self._loaded_at = float("-inf")


logger = logging.getLogger(__name__)

sender_profiles = _ScopeRows(SenderProfile)
scope_brands = _ScopeRows(ScopeBrand)


def _in_scope(rows: Mapping, payload: Mapping) -> list:
    """The rows that apply to a message of this payload, most specific first."""
    return [row for scope in scopes_for(*payload_scope(payload)) if (row := rows.get(scope))]


def sender_for(template, payload: Mapping) -> tuple[str, str]:
    """(from, reply-to) of an email, each from the first of: a scoped template's own; the
    sender profiles of the payload's scope (the organization's before the application's);
    an unscoped template's own; DEFAULT_FROM_EMAIL (and no reply-to). So an application's
    profile applies to every email of it, unless a template made for it says otherwise.
    ``template``: anything with ``from_email``, ``reply_to`` and the scope ids, or None."""
    own = (template.from_email, template.reply_to) if template is not None else ("", "")
    scoped = template is not None and bool(template.application_id or template.organization_id)
    sources = [own] if scoped else []
    default_name = parseaddr(settings.DEFAULT_FROM_EMAIL)[0]
    for profile in _in_scope(sender_profiles.get(), payload):
        name = profile.from_name or default_name
        address = profile.from_address
        sources.append((_mailbox(name, address) if address else "", profile.reply_to))
    sources += [] if scoped else [own]
    from_email = next((source[0] for source in sources if source[0]), "")
    reply_to = next((source[1] for source in sources if source[1]), "")
    return from_email or settings.DEFAULT_FROM_EMAIL, reply_to


def _mailbox(name: str, address: str) -> str:
    """``Name <address>`` as a header shows it (quoted where it must be, not RFC 2047
    encoded: the backend encodes it as its transport needs)."""
    try:
        return str(Address(name, addr_spec=address))
    except (ValueError, IndexError, HeaderParseError):  # never a crash for a display name
        return address


# A brand field's name in the template's ``brand`` (emails.content.brand.brand_from).
_BRAND_KEYS = {"product_name": "name", "legal_address": "company_info"}


def scope_brand(payload: Mapping) -> dict:
    """The ``brand`` values this payload's application or organization set for itself (its
    ScopeBrand; the organization's before the application's), only those set: they come
    before Logto's branding in the payload and the global brand settings."""
    brand: dict = {}
    for row in _in_scope(scope_brands.get(), payload):
        for field in BRAND_FIELDS:
            if getattr(row, field):
                brand.setdefault(_BRAND_KEYS.get(field, field), getattr(row, field))
        if row.logo and (url := logo_url(row.logo.name)):
            brand.setdefault("logo_url", url)
    return brand


SCOPE_NOUNS = (("application_id", "application"), ("organization_id", "organization"))


def layout_scope_problem(layout, *, application_id: str, organization_id: str) -> str:
    """Why ``layout`` may not wrap a template of this scope ("" when it may): a layout made
    for one application or organization wraps only that scope's templates."""
    wanted = {"application_id": application_id, "organization_id": organization_id}
    for name, noun in SCOPE_NOUNS:
        own = getattr(layout, name)
        if own and own != wanted[name]:
            return f"This layout is for {noun} {own} only."
    return ""


def layout_rescope_problem(layout, *, application_id: str, organization_id: str) -> str:
    """Why a saved ``layout`` may not take this scope ("" when it may): templates (or their
    drafts) of another scope use it."""
    if layout.pk is None:
        return ""
    wanted = {"application_id": application_id, "organization_id": organization_id}
    for name, noun in SCOPE_NOUNS:
        if not wanted[name]:
            continue
        others = layout.templates.exclude(**{name: wanted[name]}).count()
        others += layout.drafts.exclude(**{f"template__{name}": wanted[name]}).count()
        if others:
            return f"{others} template(s) or draft(s) of another {noun} use this layout."
    return ""


_seen: dict[tuple[str, str, str], float] = {}
SEEN_EVERY = 3600.0
SEEN_KEPT = 10_000


def scopes_seen(payload: Mapping) -> None:
    """Note the application and organization a delivered email was for, with the names Logto
    sent, for the admin's scope picker: at most once per SEEN_EVERY per id and name and
    process, so a busy application costs no write per email."""
    now = time.monotonic()
    # With the per-process lists off (EMAILS_TEMPLATE_CACHE_SECONDS=0), no memo either.
    every = SEEN_EVERY if settings.EMAILS_TEMPLATE_CACHE_SECONDS > 0 else 0.0
    for kind, (logto_id, name) in payload_scope_names(payload).items():
        key = (kind, logto_id, name)
        if now - _seen.get(key, float("-inf")) < every:
            continue
        values = {"last_seen_at": timezone.now(), **({"name": name} if name else {})}
        try:
            SeenScope.objects.update_or_create(kind=kind, logto_id=logto_id, defaults=values)
        except IntegrityError:  # another worker inserted it first: it is seen
            pass
        except DatabaseError:
            # Only the admin's picker needs it: never a reason to fail a sent email.
            logger.warning("could not note the %s a delivered email was for", kind, exc_info=True)
            continue
        if len(_seen) >= SEEN_KEPT:
            _seen.clear()
        _seen[key] = now


def payload_in_scope(payload: dict, application_id: str, organization_id: str) -> dict:
    """A sample payload as a message of this application and organization would carry it:
    their ids (and the names Logto last sent, when the sample has no object of its own), so
    a preview shows the scope's brand and sender. Ids that are not Logto ids change nothing."""
    payload = dict(payload)
    for kind, logto_id in (("application", application_id), ("organization", organization_id)):
        if not is_logto_id(logto_id):
            continue
        owner = payload.get(kind)
        if not isinstance(owner, dict):
            seen = SeenScope.objects.filter(kind=kind, logto_id=logto_id).first()
            owner = {"name": seen.name if seen else logto_id, "branding": {}}
        payload[kind] = {**owner, "id": logto_id}
    return payload


def seen_scopes() -> dict[str, list[SeenScope]]:
    """{"application": [...], "organization": [...]}, most recently seen first (at most 500
    each): the picker's choices."""
    return {
        kind: list(SeenScope.objects.filter(kind=kind).order_by("-last_seen_at")[:500])
        for kind in SeenScope.Kind.values
    }


def scope_choices() -> dict[str, list[tuple[str, str]]]:
    """{"application": [(id, name)], "organization": [(id, name)]}: the ids something is
    scoped to and those Logto sent emails for (seen_scopes), with the names Logto sent (""
    when none), named ones first, by name then id. What the admin's scope pickers offer."""
    choices: dict[str, dict[str, str]] = {"application": {}, "organization": {}}
    for model in (Template, Layout, SenderProfile, ScopeBrand):
        for app, org in (
            model.objects.exclude(application_id="", organization_id="")
            .values_list("application_id", "organization_id")
            .distinct()[:1000]
        ):
            if app:
                choices["application"].setdefault(app, "")
            if org:
                choices["organization"].setdefault(org, "")
    for kind, seen in seen_scopes().items():
        for row in seen:
            if row.name or row.logto_id not in choices[kind]:
                choices[kind][row.logto_id] = row.name
    return {
        kind: sorted(by_id.items(), key=lambda item: (not item[1], item[1].lower(), item[0]))
        for kind, by_id in choices.items()
    }
