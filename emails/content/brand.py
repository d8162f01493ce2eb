"""The brand an email shows: the admin's brand settings (emails.models.Brand), each blank
field falling back to its setting; and the uploaded logo, checked, stored with Django's
storage API, and reachable from an inbox.

An uploaded logo is untrusted bytes: only PNG, JPEG, GIF and WebP (by their first bytes, not
the file's name; never SVG, which can hold script), at most LOGO_MAX_BYTES, stored under a
name of its own hash. This server serves it (emails/backoffice/designer.brand_logo) with its
type fixed and a CSP sandbox, unless the storage has public URLs of its own (S3 and the like).
"""

from __future__ import annotations

import hashlib
import threading
import time

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from emails.models import Brand

LOGO_MAX_BYTES = 512 * 1024
LOGO_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpg",
    b"GIF87a": "gif",
    b"GIF89a": "gif",
}
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
LOGO_NAME = r"logo-[0-9a-f]{16}\.(?:png|jpg|gif|webp)"

_cache: dict = {}
_lock = threading.Lock()


class LogoRefused(ValueError):
    """The upload is not a logo we store; the message says why, for the form."""


def logo_kind(content: bytes) -> str:
    """The logo's extension, read from its first bytes; raises LogoRefused."""
    if len(content) > LOGO_MAX_BYTES:
        raise LogoRefused(f"The logo is {len(content) // 1024} KB; the limit is 512 KB.")
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "webp"
    for magic, extension in LOGO_MAGIC.items():
        if content.startswith(magic):
            return extension
    raise LogoRefused("The logo must be a PNG, JPEG, GIF or WebP image (SVG is not accepted).")


def logo_store(content: bytes) -> str:
    """Store a checked logo; returns its storage name (``brand/logo-<hash>.<ext>``)."""
    name = f"brand/logo-{hashlib.sha256(content).hexdigest()[:16]}.{logo_kind(content)}"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(content))
    return name


def brand_current() -> dict:
    """The brand settings merged over the settings' defaults, read at most once per
    EMAILS_TEMPLATE_CACHE_SECONDS per process (delivery renders many emails)."""
    ttl = settings.EMAILS_TEMPLATE_CACHE_SECONDS
    now = time.monotonic()
    with _lock:
        if ttl > 0 and _cache.get("until", 0) > now:
            return _cache["brand"]
    row = Brand.objects.filter(pk=1).first()
    brand = brand_from(
        {field: getattr(row, field) for field in BRAND_FIELDS} if row else {},
        logo=logo_url(row.logo.name) if row and row.logo else "",
    )
    with _lock:
        _cache.update(brand=brand, until=now + ttl)
    return brand


BRAND_FIELDS = ("product_name", "accent_color", "footer_text", "support_url", "legal_address")


def brand_from(values: dict, *, logo: str = "") -> dict:
    """The brand a template sees (``brand.*``) from brand settings' ``values`` (saved or
    not), each blank one falling back to its setting."""
    return {
        "name": values.get("product_name") or settings.EMAILS_BRAND_NAME,
        "logo_url": logo or settings.EMAILS_BRAND_LOGO_URL,
        "company_info": values.get("legal_address") or settings.EMAILS_COMPANY_INFO,
        "accent_color": values.get("accent_color") or "",
        "footer_text": values.get("footer_text") or "",
        "support_url": values.get("support_url") or "",
    }


def brand_forget() -> None:
    """Drop this process's copy (after a save; other processes wait for their TTL)."""
    with _lock:
        _cache.clear()


def logo_url(name: str) -> str:
    """An uploaded logo's URL as an inbox reaches it: the storage's own when it is absolute,
    else this server's /brand/ URL under EMAILS_PUBLIC_URL ("" without one: an email cannot
    point at a server it does not know the address of)."""
    own = default_storage.url(name)
    if own.startswith(("https://", "http://")):
        return own
    base = settings.EMAILS_PUBLIC_URL.rstrip("/")
    return f"{base}{reverse('brand-logo', args=[name.removeprefix('brand/')])}" if base else ""
