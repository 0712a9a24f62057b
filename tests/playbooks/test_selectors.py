import shutil
from pathlib import Path

import pytest
from django.conf import settings

from playbooks.loader import playbook_sync
from playbooks.models import Playbook
from playbooks.selectors import playbook_for_finding_type, playbook_latest, playbook_list, playbooks_for_finding_types

LIBRARY = Path(settings.BASE_DIR) / "playbooks" / "library"
SEED_FILE = "discovery-kubernetes-successful-anonymous-access.yaml"
SEED_SLUG = "discovery-kubernetes-successful-anonymous-access"
PRIVILEGED_SLUG = "privilege-escalation-kubernetes-privileged-container"


def _playbook_row(*, slug: str, version: int, finding_types: list[str], is_fallback: bool = False) -> Playbook:
    return Playbook.objects.create(
        slug=slug,
        version=version,
        title=f"{slug} v{version}",
        finding_types=finding_types,
        is_fallback=is_fallback,
        source_file=f"{slug}.yaml",
        source_sha256=f"{version:064d}",
    )


@pytest.fixture
def library(db: None) -> None:
    playbook_sync(directory=LIBRARY)


@pytest.mark.parametrize(
    "finding_type",
    [
        "Discovery:Kubernetes/SuccessfulAnonymousAccess",
        "Impact:Kubernetes/SuccessfulAnonymousAccess",
        "Policy:Kubernetes/AnonymousAccessGranted",
    ],
)
def test_anonymous_access_types_get_the_seed_playbook(library: None, finding_type: str) -> None:
    playbook = playbook_for_finding_type(finding_type=finding_type)

    assert (playbook.slug, playbook.version) == (SEED_SLUG, 1)


@pytest.mark.parametrize(
    "finding_type",
    [
        "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
        "PrivilegeEscalation:Kubernetes/AnomalousBehavior.WorkloadDeployed!PrivilegedContainer",
    ],
)
def test_privileged_container_types_get_their_playbook(library: None, finding_type: str) -> None:
    assert playbook_for_finding_type(finding_type=finding_type).slug == PRIVILEGED_SLUG


def test_unknown_type_gets_the_fallback(library: None) -> None:
    playbook = playbook_for_finding_type(finding_type="Backdoor:EC2/C&CActivity.B!DNS")

    assert (playbook.slug, playbook.is_fallback) == ("generic-triage", True)


def test_highest_version_wins_when_two_are_loaded(db: None, tmp_path: Path) -> None:
    # given v1 and then v2 of the seed loaded from the library
    directory = tmp_path / "library"
    shutil.copytree(LIBRARY, directory)
    playbook_sync(directory=directory)
    seed = directory / SEED_FILE
    seed.write_text(seed.read_text().replace("version: 1\n", "version: 2\n", 1))
    playbook_sync(directory=directory)

    # when / then
    playbook = playbook_for_finding_type(finding_type="Discovery:Kubernetes/SuccessfulAnonymousAccess")
    assert (playbook.slug, playbook.version) == (SEED_SLUG, 2)
    assert playbook_latest(slug=SEED_SLUG).version == 2
    assert list(playbook_list().values_list("slug", "version")) == [
        (SEED_SLUG, 2),
        ("generic-triage", 1),
        (PRIVILEGED_SLUG, 1),
    ]


def test_versions_compare_as_numbers(db: None) -> None:
    _playbook_row(slug="fallback", version=1, finding_types=[], is_fallback=True)
    for version in (2, 10, 9):
        _playbook_row(slug="example", version=version, finding_types=["Test:EC2/Example"])

    assert playbook_for_finding_type(finding_type="Test:EC2/Example").version == 10
    assert playbook_latest(slug="example").version == 10


def test_type_dropped_in_the_latest_version_falls_back(db: None) -> None:
    _playbook_row(slug="fallback", version=1, finding_types=[], is_fallback=True)
    _playbook_row(slug="example", version=1, finding_types=["Test:EC2/Old", "Test:EC2/Kept"])
    _playbook_row(slug="example", version=2, finding_types=["Test:EC2/Kept"])

    assert playbook_for_finding_type(finding_type="Test:EC2/Old").slug == "fallback"
    assert playbook_for_finding_type(finding_type="Test:EC2/Kept").version == 2


def test_latest_fallback_version_is_used(db: None) -> None:
    _playbook_row(slug="fallback", version=1, finding_types=[], is_fallback=True)
    _playbook_row(slug="fallback", version=3, finding_types=[], is_fallback=True)

    assert playbook_for_finding_type(finding_type="Test:EC2/Unknown").version == 3


def test_no_fallback_loaded_raises(db: None) -> None:
    _playbook_row(slug="example", version=1, finding_types=["Test:EC2/Example"])

    with pytest.raises(Playbook.DoesNotExist, match="No fallback playbook is loaded"):
        playbook_for_finding_type(finding_type="Test:EC2/Unknown")


def test_latest_of_unknown_slug_raises(db: None) -> None:
    with pytest.raises(Playbook.DoesNotExist, match="'missing'"):
        playbook_latest(slug="missing")


def _signature() -> tuple[int | None, int]:
    return Playbook.objects.order_by("-id").values_list("id", flat=True).first(), Playbook.objects.count()


def test_several_types_at_once_get_what_one_at_a_time_gets_from_one_query(library, django_assert_num_queries) -> None:
    _playbook_row(slug="example", version=1, finding_types=["Test:EC2/Example"])
    types = {"Discovery:Kubernetes/SuccessfulAnonymousAccess", "PrivilegeEscalation:Kubernetes/PrivilegedContainer",
             "Test:EC2/Example", "Test:EC2/Unknown", "Backdoor:EC2/C&CActivity.B!DNS"}  # fmt: skip
    one_at_a_time = {finding_type: playbook_for_finding_type(finding_type=finding_type) for finding_type in types}
    signature = _signature()  # the library's state, as the caller's own statement reads it
    # when
    with django_assert_num_queries(1):  # the library, once
        at_once = playbooks_for_finding_types(finding_types=types, signature=signature)
    # then
    assert {t: p.pk for t, p in at_once.items()} == {t: p.pk for t, p in one_at_a_time.items()}
    assert at_once["Test:EC2/Unknown"].slug == "generic-triage"  # the fallback
    # and again, with types not asked for before: no query at all
    with django_assert_num_queries(0):
        again = playbooks_for_finding_types(finding_types={"Test:EC2/Other", "Test:EC2/Example"}, signature=signature)
    assert again["Test:EC2/Other"].slug == "generic-triage" and again["Test:EC2/Example"].slug == "example"


def test_a_newer_library_is_read_again(db: None) -> None:
    _playbook_row(slug="fallback", version=1, finding_types=[], is_fallback=True)
    _playbook_row(slug="example", version=1, finding_types=["Test:EC2/Old", "Test:EC2/Kept"])
    before = playbooks_for_finding_types(finding_types={"Test:EC2/Old", "Test:EC2/Kept"})
    # when: a new version drops a type
    _playbook_row(slug="example", version=2, finding_types=["Test:EC2/Kept"])
    after = playbooks_for_finding_types(finding_types={"Test:EC2/Old", "Test:EC2/Kept"})
    # then
    assert (before["Test:EC2/Old"].slug, before["Test:EC2/Kept"].version) == ("example", 1)
    assert (after["Test:EC2/Old"].slug, after["Test:EC2/Kept"].version) == ("fallback", 2)


def test_without_a_fallback_only_an_unlisted_type_is_refused(db: None) -> None:
    _playbook_row(slug="example", version=1, finding_types=["Test:EC2/Example"])

    assert playbooks_for_finding_types(finding_types={"Test:EC2/Example"})["Test:EC2/Example"].slug == "example"
    with pytest.raises(Playbook.DoesNotExist, match="No fallback playbook is loaded"):
        playbooks_for_finding_types(finding_types={"Test:EC2/Unknown"})
