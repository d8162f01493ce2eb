"""The template context: the Logto payload, frozen (read-only mappings and tuples), plus the
brand, language, direction and expiry a template may use."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType


def freeze(value):
    """JSON data -> read-only data: dicts become mappingproxies and lists tuples, so no
    ``{{ list.clear }}`` or ``{{ obj.pop }}`` can change what the next variable sees."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(key): freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    return value


# Brand values that only the brand settings give (the payload has no such thing).
BRAND_EXTRAS = ("accent_color", "footer_text", "support_url")
RTL_LANGUAGES = {"ar", "fa", "he", "ur", "ps", "sd", "ug", "yi", "dv", "ckb"}


def email_context(
    payload: Mapping,
    *,
    locale: str,
    brand: Mapping,
    expires_in_minutes: int,
    own_brand: Mapping | None = None,
) -> dict:
    """The template context: the Logto payload (frozen) plus a few derived, plain values:

    - ``brand``: name, logo_url, company_info, and accent_color, footer_text, support_url
      (the admin's brand settings). ``own_brand`` first: what the message's application or
      organization set for itself. Then name and logo from the payload when it has them
      (``organization.branding.logoUrl``, ``application.branding.logoUrl``,
      ``application.displayName`` or ``name``), then ``brand`` (the configured defaults).
    - ``lang`` and ``direction`` (``rtl`` for Arabic, Persian, ...) for the template's locale.
    - ``expires_in_minutes``: the code's lifetime, for expiry wording.
    """
    context = dict(freeze(payload))
    application = _mapping(payload.get("application"))
    organization = _mapping(payload.get("organization"))
    own = own_brand or {}
    context["brand"] = freeze(
        {
            "name": _first_text(
                own.get("name"), application.get("displayName"), application.get("name")
            )
            or brand.get("name", ""),
            "logo_url": _first_text(
                own.get("logo_url"),
                _branding(organization).get("logoUrl"),
                _branding(application).get("logoUrl"),
            )
            or brand.get("logo_url", ""),
            **{key: own.get(key) or brand.get(key, "") for key in ("company_info", *BRAND_EXTRAS)},
        }
    )
    language = locale.split("-")[0].lower()
    context["lang"] = locale
    context["direction"] = "rtl" if language in RTL_LANGUAGES else "ltr"
    context["expires_in_minutes"] = expires_in_minutes
    return context


def _branding(owner: Mapping) -> Mapping:
    return _mapping(owner.get("branding"))


def _mapping(value) -> Mapping:
    return value if isinstance(value, dict) else {}


def _first_text(*values) -> str:
    return next((value for value in values if isinstance(value, str) and value.strip()), "")
