"""'This IP / ASN / user also appears in incidents …', restricted to what the reader may see."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from incidents.models import Incident, Observable
from incidents.selectors import cluster_names_for_user, related_incidents
from incidents.services import incident_open

pytestmark = pytest.mark.django_db


def _observe(kind: str, value: str, *incidents: Incident) -> None:
    observable, _ = Observable.objects.get_or_create(kind=kind, value=value)
    observable.incidents.add(*incidents)


def test_shared_observables_list_the_other_visible_incidents(incident, playbook, responder, other_responder) -> None:
    # given: an IP shared with one open case and one restricted case, and an ASN seen only here
    shared = incident_open(title="same ip", playbook=playbook, actor=responder)
    hidden = incident_open(title="restricted", playbook=playbook, actor=responder)
    Incident.objects.filter(pk=hidden.pk).update(restricted=True)
    _observe("ip", "198.51.100.23", incident, shared, hidden)
    _observe("asn", "64511", incident)
    # when
    related = related_incidents(incident=incident, user=other_responder)
    # then: the restricted case is not revealed, and an observable seen nowhere else is not listed
    assert related == [("ip", "198.51.100.23", [(shared.pk, f"WP-{shared.pk}")])]


def test_manager_sees_restricted_cases_too_newest_first(incident, playbook, responder, manager) -> None:
    older = incident_open(title="older", playbook=playbook, actor=responder)
    newer = incident_open(title="newer", playbook=playbook, actor=responder)
    Incident.objects.filter(pk=newer.pk).update(restricted=True)
    _observe("k8s_user", "system:anonymous", incident, older, newer)
    assert related_incidents(incident=incident, user=manager)[0][2] == [
        (newer.pk, f"WP-{newer.pk}"),
        (older.pk, f"WP-{older.pk}"),
    ]


def test_query_count_does_not_grow_with_the_number_of_observables(incident, playbook, responder) -> None:
    other = incident_open(title="other", playbook=playbook, actor=responder)
    counts = []
    for n in (2, 12):
        for i in range(n):
            _observe("ip", f"203.0.113.{i}", incident, other)
        with CaptureQueriesContext(connection) as queries:
            assert len(related_incidents(incident=incident, user=responder)) == n
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_cluster_filter_lists_visible_clusters_only(playbook, responder, other_responder, manager) -> None:
    # given: three clusters, one of them only on a restricted case that other_responder is not on
    for cluster in ("prod", "dev", "prod"):
        incident_open(title=cluster, playbook=playbook, actor=responder, cluster_name=cluster)
    secret = incident_open(title="secret", playbook=playbook, actor=responder, cluster_name="secret-cluster")
    Incident.objects.filter(pk=secret.pk).update(restricted=True)
    mine = incident_open(title="mine", playbook=playbook, actor=responder, cluster_name="team-cluster")
    Incident.objects.filter(pk=mine.pk).update(restricted=True, commander=other_responder)
    # then
    assert cluster_names_for_user(user=other_responder) == ["dev", "prod", "team-cluster"]
    assert cluster_names_for_user(user=manager) == ["dev", "prod", "secret-cluster", "team-cluster"]
