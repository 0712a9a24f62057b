"""SLA breach notification: once per missed deadline, email + timeline row, retried when mail fails."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

from incidents.models import Incident, Phase, Priority, SlaBreach, TimelineEvent
from incidents.services import incident_change_phase, incident_open, incident_update
from incidents.services.sla import sla_breach_notify, sla_breaches_sweep
from incidents.tasks import sla_breach_sweep_task
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


class RefusingBackend(BaseEmailBackend):
    def send_messages(self, email_messages):  # type: ignore[no-untyped-def]
        raise ConnectionRefusedError("mail server down")


@pytest.fixture
def late_p1(playbook, responder) -> Incident:
    detected = timezone.now() - timedelta(minutes=40)
    return incident_open(
        title="anon access", playbook=playbook, actor=responder, priority=Priority.P1, detected_at=detected
    )


def test_breach_is_notified_once_by_email_and_on_the_timeline(late_p1, manager, mailoutbox, events) -> None:
    # given: a manager with an email address, and a case 25 min past its 15-min target
    UserFactory(username="lead", role="manager", email="")  # no address: not a recipient
    # when: the sweep runs twice
    first = sla_breaches_sweep()
    second = sla_breaches_sweep()
    # then: one breach, one email, one timeline row
    assert (first, second) == (1, 0)
    breach = SlaBreach.objects.get()
    assert breach.incident == late_p1 and breach.due_at == late_p1.sla_due_at
    assert breach.recipients == [manager.email]
    (mail,) = mailoutbox
    assert mail.to == [manager.email]
    assert late_p1.reference in mail.subject and "SLA breached" in mail.subject
    assert "acknowledgement target 15 min" in mail.body and f"/incidents/{late_p1.pk}/" in mail.body
    (event,) = events(late_p1, TimelineEvent.Kind.SLA)
    assert event.occurred_at == late_p1.sla_due_at
    assert event.data["event"] == "sla.breached" and event.data["priority"] == "P1"


def test_configured_recipients_and_the_team_are_notified(late_p1, manager, settings, mailoutbox) -> None:
    settings.WATCHPOST_SLA_NOTIFY_EMAILS = ["soc@example.test"]
    Incident.objects.filter(pk=late_p1.pk).update(commander=UserFactory(username="dana", email="dana@example.test"))
    assert sla_breach_notify(incident_id=late_p1.pk)
    assert mailoutbox[0].to == ["dana@example.test", "soc@example.test"]


def test_acknowledged_or_not_yet_due_cases_are_not_notified(playbook, responder, late_p1, mailoutbox) -> None:
    fresh = incident_open(title="fresh", playbook=playbook, actor=responder, priority=Priority.P4)
    incident_change_phase(incident_id=late_p1.pk, actor=responder, to=Phase.ACKNOWLEDGED)
    assert sla_breaches_sweep() == 0
    assert not sla_breach_notify(incident_id=fresh.pk)
    assert mailoutbox == [] and not SlaBreach.objects.exists()


def test_a_new_deadline_missed_is_a_new_breach(late_p1, responder, manager, mailoutbox) -> None:
    # given: the P1 breach notified
    assert sla_breaches_sweep() == 1
    # when: priority lowered to P2 (60 min target: still 40 min in, so no breach), then raised back
    incident_update(incident_id=late_p1.pk, actor=responder, priority=Priority.P2)
    assert sla_breaches_sweep() == 0
    Incident.objects.filter(pk=late_p1.pk).update(detected_at=timezone.now() - timedelta(hours=2))
    incident_update(incident_id=late_p1.pk, actor=responder, priority=Priority.P3)
    incident_update(incident_id=late_p1.pk, actor=responder, priority=Priority.P2)
    # then: the new P2 deadline (passed) is notified once more
    assert sla_breaches_sweep() == 1
    assert SlaBreach.objects.count() == 2 and len(mailoutbox) == 2


def test_mail_failure_rolls_back_so_the_next_sweep_tries_again(late_p1, manager, settings, mailoutbox) -> None:
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"
    with pytest.raises(ConnectionRefusedError):
        sla_breach_notify(incident_id=late_p1.pk)
    assert not SlaBreach.objects.exists()
    assert not TimelineEvent.objects.filter(incident=late_p1, kind=TimelineEvent.Kind.SLA).exists()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert sla_breaches_sweep() == 1


def test_the_sweep_is_a_beat_task(late_p1, manager, mailoutbox) -> None:
    schedule = django_settings.CELERY_BEAT_SCHEDULE["sla-breach-sweep"]
    assert schedule["task"] == "incidents.tasks.sla_breach_sweep_task"
    assert sla_breach_sweep_task.apply().get() == 1


def test_a_breach_is_delivered_to_sla_subscribers_once(late_p1, manager, django_capture_on_commit_callbacks) -> None:
    from integrations.models import WebhookDelivery, WebhookSubscription

    WebhookSubscription.objects.create(name="pager", url="https://pager.example.com/h", event_types=["sla.breached"])
    WebhookSubscription.objects.create(name="jira", url="https://jira.example.com/h", event_types=["note.added"])
    with django_capture_on_commit_callbacks(execute=True):
        sla_breaches_sweep()
        sla_breaches_sweep()
    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.subscription.name == "pager" and delivery.event_type == "sla.breached"
    assert late_p1.reference in delivery.body and '"priority":"P1"' in delivery.body
