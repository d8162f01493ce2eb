from django.urls import path

from emails.backoffice import pages as views

app_name = "emails"

urlpatterns = [
    path("<str:token>/", views.preview_page, name="preview"),
    path("<str:token>/email/<int:template_id>/", views.preview_email, name="preview-email"),
]
