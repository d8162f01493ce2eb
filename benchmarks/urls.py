from django.urls import path

from benchmarks import views
from project.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("bench/insert", views.insert_only),
    path("bench/nodb", views.parse_only),
    *project_urlpatterns,
]
