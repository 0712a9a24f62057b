from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config import health
from incidents.api import urls as api_urls
from incidents.api.findings import findings_webhook
from incidents.views.dashboard import home

urlpatterns = [
    path("", home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/findings/", findings_webhook, name="api-findings"),
    path("api/v1/", include((api_urls.v1, "api"))),
    path("api/", include(api_urls.schema)),
    path("incidents/", include("incidents.urls")),
    path("playbooks/", include("playbooks.urls")),
    path("admin/", admin.site.urls),
]

# Unknown paths under /api/ answer problem+json; the pages keep the HTML 404.
handler404 = "incidents.api.urls.not_found"
