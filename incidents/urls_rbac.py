"""URLs of the RBAC remediation forms, included under /incidents/ in the `incidents` namespace."""

from django.urls import path

from incidents.views import rbac

urlpatterns = [
    path("<int:incident_id>/rbac/propose/", rbac.rbac_propose, name="rbac-propose"),
    path("<int:incident_id>/rbac/<int:run_id>/rollback/", rbac.rbac_rollback, name="rbac-rollback"),
    path("<int:incident_id>/rbac/panel/<int:item_id>/", rbac.rbac_panel, name="rbac-panel"),
]
