"""Django's error pages (project/urls.py's handler400/403/404/500), as short JSON for the paths
machines call.

Logto shows the body of any answer that is not 2xx to its end user. Under ``/api/`` (Logto's
endpoint, the management API) and ``/anymail/`` (the providers' webhooks), an error Django
answers itself is ``{"message": "..."}``, the shape of every other answer there, instead of
its HTML page: a Host not in DJANGO_ALLOWED_HOSTS (400), a URL that matches nothing (404), an
unexpected exception (500). DRF's views answer their own errors; these are the ones that
happen before or outside them. Elsewhere (the admin, designer pages) Django's pages stay.

These run while something has already gone wrong: no database, no template, and never
``request.get_host()`` (it raises again for the Host that led here).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

MACHINE_PATHS = ("/api/", "/anymail/")


def _for_machines(request: HttpRequest) -> bool:
    return request.path_info.startswith(MACHINE_PATHS)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _for_machines(request):
        return JsonResponse({"message": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _for_machines(request):
        return JsonResponse({"message": "Permission denied."}, status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _for_machines(request):
        return JsonResponse({"message": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _for_machines(request):
        return JsonResponse(
            {"message": "Internal server error. Please try again later."}, status=500
        )
    return defaults.server_error(request)
