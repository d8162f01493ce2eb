from django.contrib import admin
from django.urls import include, path, re_path
from rest_framework.routers import DefaultRouter

from emails.backoffice.designer import brand_logo
from emails.content.management_api import (
    DocsView,
    LayoutViewSet,
    RenderView,
    SchemaView,
    ScopeBrandViewSet,
    SenderProfileViewSet,
    TemplateViewSet,
    ValidateView,
)
from emails.intake.api import LogtoEmailView

router = DefaultRouter()
router.register("templates", TemplateViewSet)
router.register("layouts", LayoutViewSet)
router.register("sender-profiles", SenderProfileViewSet)
router.register("brands", ScopeBrandViewSet)

urlpatterns = [
    # Served with and without the trailing slash by the same view: never a redirect, which
    # would make Logto's HTTP client drop the Authorization header.
    re_path(r"^api/logto/email/?$", LogtoEmailView.as_view(), name="logto-email"),
    # anymail's tracking webhooks: /anymail/<esp>/tracking/, basic auth ANYMAIL_WEBHOOK_SECRET;
    # with debug off and no secret they answer 404 (emails/delivery/webhooks.py).
    path("anymail/", include("emails.delivery.webhooks")),
    # The management API (templates as code) and its OpenAPI document.
    path("api/v1/", include(router.urls)),
    path("api/v1/render", RenderView.as_view(), name="api-render"),
    path("api/v1/validate", ValidateView.as_view(), name="api-validate"),
    # The OpenAPI document and Swagger UI: token or admin session, view permission on templates.
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    path("api/docs/", DocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    # Designers' preview links: no login, signed tokens (emails/backoffice/designer.py).
    path("preview/", include("emails.urls")),
    # Uploaded brand logos, as emails show them (emails/content/brand.py).
    path("brand/<str:name>", brand_logo, name="brand-logo"),
]

# Short JSON instead of Django's HTML error pages under /api/ and /anymail/ (project/errors.py).
handler400 = "project.errors.bad_request"
handler403 = "project.errors.permission_denied"
handler404 = "project.errors.page_not_found"
handler500 = "project.errors.server_error"
