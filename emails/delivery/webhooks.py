"""anymail's webhook URLs (``/anymail/<provider>/tracking/`` and the rest), served only when
they can tell the provider from anyone else.

anymail checks basic auth against ``ANYMAIL_WEBHOOK_SECRET``, but without it accepts every
POST and only warns (``AnymailInsecureWebhookWarning``): anyone could post fake bounces and
complaints onto messages. So with debug off and no secret every anymail URL answers 404, and
the system check emails.W004 says so at start-up. With debug on they stay open, for trying a
provider's webhook locally.

The rule is the shared secret for every provider, also for those that sign their posts:

- anymail's own advice ("Securing webhooks": use a shared authentication secret; even with
  signed webhooks it adds a layer), and every provider it supports can send it (the
  ``https://user:password@host/...`` URL; Postal's HTTP client sends a URL's user info as
  basic auth too);
- for several providers (Postmark, Brevo, Mailjet, SparkPost, Amazon SES: anymail does not
  check SNS signatures) it is the only check there is, and for Resend, SendGrid and Mailtrap
  a signature is optional; one rule needs no table of which provider signs what;
- a signing key, where set (``ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY``,
  ``ANYMAIL_POSTAL_WEBHOOK_KEY``, ``ANYMAIL_RESEND_SIGNING_SECRET``, ...), is checked as well:
  anymail runs every validator of the view.

The gate is read on every request (not when the URLconf is imported), so a settings change
applies to the next request, and tests can change it.
"""

from __future__ import annotations

import functools
import json
import logging

from anymail import urls as anymail_urls
from anymail.exceptions import AnymailConfigurationError
from anymail.utils import get_anymail_setting
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, JsonResponse
from django.urls import URLPattern

logger = logging.getLogger(__name__)
_unconfigured: set[str] = set()  # paths already logged as not configured, per process


def webhook_secrets() -> list[str]:
    """The configured ``user:password`` values, as anymail reads them (one or a list)."""
    secret = get_anymail_setting("webhook_secret", default=None)
    if not secret:
        return []
    return [secret] if isinstance(secret, str) else list(secret)


def webhooks_served() -> bool:
    return settings.DEBUG or bool(webhook_secrets())


def _served_with_secret(view):
    # functools.wraps copies the view's attributes, csrf_exempt among them: providers post
    # without a CSRF token.
    @functools.wraps(view)
    def gate(request, *args, **kwargs):
        if not webhooks_served():
            raise Http404("webhooks are off: ANYMAIL_WEBHOOK_SECRET is not set")
        try:
            return view(request, *args, **kwargs)
        except json.JSONDecodeError:
            # anymail parses the body without a guard: a post that is not JSON was a 500.
            return JsonResponse({"message": "Webhook body is not valid JSON."}, status=400)
        except AnymailConfigurationError as exc:
            # Some providers' views need a signing key of their own (Mailgun, MailerSend,
            # Postal, Mandrill) and raise when built without it, before any authentication:
            # that was a 500 with a traceback for anyone's POST. Not served, said once.
            if request.path not in _unconfigured:
                _unconfigured.add(request.path)
                logger.warning("webhook %s is off: %s", request.path, " ".join(str(exc).split()))
            raise Http404("this provider's webhook is not configured") from None

    return gate


def webhook_urlpatterns() -> list[URLPattern]:
    """anymail's URL patterns, each view behind the gate; include them as the "anymail"
    namespace. Raises ImproperlyConfigured if a newer anymail nests its URLs (a nested
    include would pass ungated)."""
    patterns = []
    for pattern in anymail_urls.urlpatterns:
        if not isinstance(pattern, URLPattern):
            raise ImproperlyConfigured(f"anymail URL {pattern!r} is not a plain pattern")
        patterns.append(
            URLPattern(
                pattern.pattern,
                _served_with_secret(pattern.callback),
                pattern.default_args,
                pattern.name,
            )
        )
    return patterns


# This module is the URLconf included at /anymail/ (project/urls.py); "anymail" keeps
# anymail's own URL names (reverse("anymail:postmark_tracking_webhook")).
app_name = "anymail"
urlpatterns = webhook_urlpatterns()
