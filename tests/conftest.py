"""Shared fixtures: one user per role, a small three-part playbook and an incident opened from it.

The playbook is built with the ORM on purpose (the YAML loader is tested on its own): part 1 has a
mandatory task, an optional task and a decision; parts 2 and 3 have two mandatory tasks each. The
decision's options make part 2 or step `p3-improve` not applicable.
"""

from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractBaseUser, Group

from incidents import permissions
from incidents.models import Incident, TimelineEvent
from incidents.services import incident_open
from playbooks.models import ChecklistItem, Playbook, PlaybookStep
from tests.factories import PlaybookFactory, PlaybookStepFactory, UserFactory
from tests.sandbox_fixtures import sandbox, scenario_cluster  # noqa: F401 - the Kubernetes fixtures

DECISION_OPTIONS = [
    {"id": "authorized", "label": "Valid need", "goto": "part-3", "not_applicable": ["part-2"]},
    {"id": "unauthorized", "label": "Not valid", "goto": "part-2", "not_applicable": ["p3-improve"]},
]

# (step_id, part, kind, mandatory), in playbook order.
PLAYBOOK_STEPS = [
    ("p1-confirm", 1, PlaybookStep.Kind.TASK, True),
    ("p1-optional", 1, PlaybookStep.Kind.TASK, False),
    ("p1-decide", 1, PlaybookStep.Kind.DECISION, True),
    ("p2-isolate", 2, PlaybookStep.Kind.TASK, True),
    ("p2-revoke", 2, PlaybookStep.Kind.TASK, True),
    ("p3-restore", 3, PlaybookStep.Kind.TASK, True),
    ("p3-improve", 3, PlaybookStep.Kind.TASK, True),
]
PART_TITLES = {1: "Acquire, preserve, document evidence", 2: "Contain", 3: "Recover and improve"}


@pytest.fixture
def role_groups(transactional_db: None) -> None:
    """For `transaction=True` tests: the flush after each one also removes the migration-made role groups."""
    for name in permissions.ROLES:
        Group.objects.get_or_create(name=name)


@pytest.fixture
def viewer(db: None) -> AbstractBaseUser:
    return UserFactory(username="viewer", role=permissions.VIEWER)


@pytest.fixture
def responder(db: None) -> AbstractBaseUser:
    return UserFactory(username="responder", role=permissions.RESPONDER)


@pytest.fixture
def other_responder(db: None) -> AbstractBaseUser:
    return UserFactory(username="responder2", role=permissions.RESPONDER)


@pytest.fixture
def manager(db: None) -> AbstractBaseUser:
    return UserFactory(username="manager", role=permissions.MANAGER)


@pytest.fixture
def admin(db: None) -> AbstractBaseUser:
    """Admin through the `admin` group (not a superuser)."""
    return UserFactory(username="admin", role=permissions.ADMIN)


@pytest.fixture
def superuser(db: None) -> AbstractBaseUser:
    return UserFactory(username="root", is_superuser=True, is_staff=True)


@pytest.fixture
def outsider(db: None) -> AbstractBaseUser:
    """Authenticated, but in no role group."""
    return UserFactory(username="outsider")


def build_playbook(*, slug: str = "unauthorized-access", version: int = 1) -> Playbook:
    playbook = PlaybookFactory(slug=slug, version=version, title="Unauthorized access", is_fallback=True)
    for position, (step_id, part, kind, mandatory) in enumerate(PLAYBOOK_STEPS, start=1):
        PlaybookStepFactory(
            playbook=playbook,
            step_id=step_id,
            part=part,
            part_title=PART_TITLES[part],
            position=position,
            number=f"{part}.{position}",
            title=step_id.replace("-", " ").capitalize(),
            kind=kind,
            mandatory=mandatory,
            options=DECISION_OPTIONS if kind == PlaybookStep.Kind.DECISION else [],
        )
    return playbook


@pytest.fixture
def playbook(db: None) -> Playbook:
    return build_playbook()


@pytest.fixture
def incident(playbook: Playbook, responder: AbstractBaseUser) -> Incident:
    return incident_open(title="Unexpected kubectl exec in prod", playbook=playbook, actor=responder)


@pytest.fixture
def checklist_item() -> Callable[..., ChecklistItem]:
    """`checklist_item(incident, "p1-confirm")`: the incident's item for that step, fresh from the DB."""

    def get(incident: Incident, step_id: str) -> ChecklistItem:
        return ChecklistItem.objects.select_related("step").get(incident=incident, step__step_id=step_id)

    return get


@pytest.fixture
def events() -> Callable[..., list[TimelineEvent]]:
    """`events(incident, kind=None)`: the incident's timeline rows in order, optionally of one kind."""

    def get(incident: Incident, kind: str | None = None) -> list[TimelineEvent]:
        queryset = TimelineEvent.objects.filter(incident=incident).order_by("occurred_at", "id")
        if kind is not None:
            queryset = queryset.filter(kind=kind)
        return list(queryset)

    return get
