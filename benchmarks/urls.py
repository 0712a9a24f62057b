"""The app's URLs plus the reference endpoints under /bench-ref/ (bench settings only)."""

from django.urls import path

from benchmarks import views
from config.urls import urlpatterns as app_urlpatterns

urlpatterns = [
    *app_urlpatterns,
    path("bench-ref/incidents/", views.incident_list_reference, name="bench-ref-incidents"),
    path("bench-ref/incidents/<int:incident_id>/timeline/", views.timeline_reference, name="bench-ref-timeline"),
]
