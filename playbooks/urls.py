from django.urls import path

from playbooks import views

app_name = "playbooks"

urlpatterns = [
    path("", views.playbook_index, name="list"),
    path("<slug:slug>/v<int:version>/", views.playbook_detail, name="detail"),
]
