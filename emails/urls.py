from django.urls import path

from emails.backoffice import designer

app_name = "emails"

urlpatterns = [
    path("<str:token>/", designer.preview_page, name="preview"),
    path("<str:token>/email/<int:template_id>/", designer.preview_email, name="preview-email"),
]
