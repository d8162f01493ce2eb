"""Django's SMTP backend, trusting a private CA for the SMTP server only (EMAIL_SSL_CAFILE).

Without EMAIL_SSL_CAFILE it verifies the server as Django's does, against the system's CAs
(which OpenSSL's SSL_CERT_FILE replaces for the whole process). With it, the server's
certificate must chain to a CA in that file, and nothing else in the process is affected.

Failure contract: a CA file that is missing, unreadable or holds no certificate raises
ImproperlyConfigured naming EMAIL_SSL_CAFILE (the start-up check builds the context, so it
stops the web and the worker first); a certificate that does not verify raises
ssl.SSLCertVerificationError from open(), which delivery retries as a configuration error.
"""

from __future__ import annotations

import ssl

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends import smtp
from django.utils.functional import cached_property


class EmailBackend(smtp.EmailBackend):
    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        cafile = settings.EMAIL_SSL_CAFILE or None
        try:
            # With a cafile only that file is trusted; without, the system's CAs (as Django).
            context = ssl.create_default_context(cafile=cafile)
        except ssl.SSLError:
            raise ImproperlyConfigured(
                f"EMAIL_SSL_CAFILE={cafile} holds no CA certificate in PEM form"
            ) from None
        except OSError as exc:
            raise ImproperlyConfigured(
                f"EMAIL_SSL_CAFILE={cafile} cannot be read: {exc.strerror}"
            ) from None
        if self.ssl_certfile or self.ssl_keyfile:
            # A client certificate, as Django's EMAIL_SSL_CERTFILE/KEYFILE (Django's own context
            # for them loads no CA at all, so it could verify no server).
            # As Django, a keyfile without a certfile raises here.
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)  # type: ignore[arg-type]
        return context
