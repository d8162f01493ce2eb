from django.contrib import admin
from django.urls import include, path, re_path

from emails.api import LogtoEmailView

urlpatterns = [
    # Served with and without the trailing slash by the same view: never a redirect, which
    # would make Logto's HTTP client drop the Authorization header.
    re_path(r"^api/logto/email/?$", LogtoEmailView.as_view(), name="logto-email"),
    # anymail's tracking webhooks: /anymail/<esp>/tracking/, basic auth ANYMAIL_WEBHOOK_SECRET.
    path("anymail/", include("anymail.urls")),
    path("admin/", admin.site.urls),
    # Designers' preview links: no login, signed tokens (emails/views.py).
    path("preview/", include("emails.urls")),
]
