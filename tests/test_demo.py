"""`manage.py seed_demo` (what `make run` shows on a fresh machine), on the real PostgreSQL."""

from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_django import Settings

from incidents import permissions
from incidents.demo.importer import demo_incidents
from incidents.models import Finding, Incident, Observable, Phase, TimelineEvent
from integrations.models import Cluster
from playbooks.checklists import checklist_items
from playbooks.models import ChecklistItem, Playbook
from playbooks.selectors import playbook_list

DEMO_TYPES = Counter(
    {
        "Discovery:Kubernetes/SuccessfulAnonymousAccess": 3,
        "Policy:Kubernetes/AnonymousAccessGranted": 1,
        "PrivilegeEscalation:Kubernetes/PrivilegedContainer": 1,
        "Execution:Kubernetes/ExecInKubeSystemPod": 1,
    }
)
UNKNOWN_TYPE = "Execution:Kubernetes/ExecInKubeSystemPod"


@pytest.fixture
def seeded(settings: Settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # hashing speed only
    call_command("sync_playbooks", verbosity=0)
    call_command("seed_demo", force=True, verbosity=0)


def _playbook_listing(finding_type: str) -> Playbook | None:
    return next((pb for pb in playbook_list() if finding_type in pb.finding_types), None)


def _counts() -> dict[str, int]:
    return {
        "incidents": Incident.objects.count(),
        "findings": Finding.objects.count(),
        "observables": Observable.objects.count(),
        "observable_links": Observable.incidents.through.objects.count(),
        "timeline": TimelineEvent.objects.count(),
        "checklist": ChecklistItem.objects.count(),
        "users": get_user_model().objects.count(),
    }


@pytest.mark.django_db
def test_seed_demo_opens_one_incident_per_finding_from_the_matching_playbook(seeded: None) -> None:
    incidents = list(demo_incidents().select_related("playbook"))

    assert Counter(incident.finding_type for incident in incidents) == DEMO_TYPES
    for incident in incidents:
        expected = _playbook_listing(incident.finding_type)
        if expected is None:
            assert incident.playbook.is_fallback, incident.finding_type
        else:
            assert incident.playbook == expected, incident.finding_type
    by_type = {incident.finding_type: incident for incident in incidents}
    assert by_type[UNKNOWN_TYPE].playbook.is_fallback
    assert not by_type["Discovery:Kubernetes/SuccessfulAnonymousAccess"].playbook.is_fallback
    assert not by_type["PrivilegeEscalation:Kubernetes/PrivilegedContainer"].playbook.is_fallback


@pytest.mark.django_db
def test_each_demo_incident_has_checklist_finding_observables_and_finding_event(seeded: None) -> None:
    for incident in demo_incidents().select_related("playbook"):
        assert len(checklist_items(incident_id=incident.pk)) == incident.playbook.steps.count() > 0
        finding = incident.findings.get()
        assert incident.external_ref == f"{finding.account_id}/{finding.region}/{finding.finding_id}"
        assert finding.finding_id == finding.raw["id"] and incident.source == "guardduty"
        assert finding.finding_type == incident.finding_type and not finding.is_sample
        assert incident.title == f"{incident.finding_type} on {incident.cluster_name}"
        assert incident.detected_at == finding.first_seen
        kinds = set(incident.observables.values_list("kind", flat=True))
        assert {"ip", "asn", "k8s_user", "user_agent", "cluster"} <= kinds
        received = incident.timeline.filter(kind=TimelineEvent.Kind.FINDING).get()
        assert received.summary == f"GuardDuty finding {finding.finding_type} received (count {finding.count})"


@pytest.mark.django_db
def test_payments_prod_discovery_is_medium_p3_with_its_ip_and_asn(seeded: None) -> None:
    incident = Incident.objects.get(
        finding_type="Discovery:Kubernetes/SuccessfulAnonymousAccess", cluster_name="payments-prod"
    )

    assert (incident.account_id, incident.region) == ("210987654321", "eu-west-1")
    assert (incident.get_severity_display(), incident.get_priority_display()) == ("Medium", "P3")
    values = set(incident.observables.values_list("kind", "value"))
    assert {("ip", "198.51.100.23"), ("asn", "AS64511"), ("k8s_user", "system:anonymous")} <= values
    # The same cluster shows up on the AnonymousAccessGranted case too: one shared observable.
    cluster = Observable.objects.get(kind="cluster", value__endswith=":cluster/payments-prod")
    assert cluster.incidents.count() == 2


@pytest.mark.django_db
def test_demo_moves_two_cases_forward(seeded: None) -> None:
    containment = Incident.objects.get(phase=Phase.CONTAINMENT)
    acknowledged = Incident.objects.get(phase=Phase.ACKNOWLEDGED)

    for incident in (containment, acknowledged):
        assert incident.commander is not None and incident.commander.username == "manager"
        assert list(incident.assignees.values_list("username", flat=True)) == ["responder"]
        assert incident.acknowledged
    assert containment.checklist.filter(step__part=1, status=ChecklistItem.Status.DONE).count() >= 3
    decision = containment.timeline.get(kind=TimelineEvent.Kind.DECISION)
    assert decision.data["goto"] == "part-2"
    assert Incident.objects.filter(phase=Phase.NEW).count() == 4


@pytest.mark.django_db
def test_demo_users_have_their_roles_and_the_demo_password(seeded: None) -> None:
    users = {user.username: user for user in get_user_model().objects.all()}

    assert permissions.can_work(users["responder"]) and not permissions.can_manage(users["responder"])
    assert permissions.can_manage(users["manager"]) and not permissions.is_admin(users["manager"])
    assert permissions.can_read(users["viewer"]) and not permissions.can_work(users["viewer"])
    assert users["admin"].is_superuser and permissions.is_admin(users["admin"])
    assert all(users[name].check_password("watchpost-demo") for name in ("responder", "manager", "viewer", "admin"))


@pytest.mark.django_db
def test_seed_demo_again_creates_nothing(seeded: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    before = _counts()
    monkeypatch.setenv("WATCHPOST_DEMO_PASSWORD", "another-demo-password")

    # when
    call_command("seed_demo", force=True, verbosity=0)

    # then
    assert _counts() == before
    assert before["incidents"] == 6
    assert get_user_model().objects.get(username="viewer").check_password("another-demo-password")


@pytest.mark.django_db
def test_seed_demo_refuses_a_non_embedded_database_without_force() -> None:
    with pytest.raises(CommandError, match="--force"):
        call_command("seed_demo", verbosity=0)
    assert not Incident.objects.exists()


@pytest.mark.django_db
def test_seed_demo_attaches_the_sandbox_cluster_to_the_demo_incidents(seeded: None, settings: Settings) -> None:
    cluster = Cluster.objects.get(is_sandbox=True)
    assert cluster.via == Cluster.Via.KUBECONFIG
    assert cluster.kubeconfig_path == str(settings.VAR_DIR / "sandbox" / "kubeconfig.yaml")  # make run writes it
    containment = Incident.objects.get(phase=Phase.CONTAINMENT)
    assert containment.cluster_name == cluster.name
