from django.urls import path

from benchmarks import views
from project.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("bench/insert", views.insert_only),
    path("bench/nodb", views.parse_only),
    # benchmarks/compare.py's alternatives, served with benchmarks.settings_compare (plain
    # HTTP for /bench/; post_office installed).
    path("bench/naive", views.NaiveConnector.as_view()),
    path("bench/post-office", views.PostOfficeConnector.as_view()),
    *project_urlpatterns,
]
