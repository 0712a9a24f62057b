import copy
import hashlib
import shutil
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db.models import Count

from playbooks.loader import PlaybookValidationError, playbook_sync
from playbooks.models import Playbook, PlaybookStep

LIBRARY = Path(settings.BASE_DIR) / "playbooks" / "library"
FIXTURE = Path(__file__).parent / "fixtures" / "valid.yaml"
SEED_FILE = "discovery-kubernetes-successful-anonymous-access.yaml"
SEED_SLUG = "discovery-kubernetes-successful-anonymous-access"
PRIVILEGED_SLUG = "privilege-escalation-kubernetes-privileged-container"


def _library_copy(tmp_path: Path) -> Path:
    directory = tmp_path / "library"
    shutil.copytree(LIBRARY, directory)
    return directory


def _fixture_data() -> dict[str, Any]:
    return yaml.safe_load(FIXTURE.read_text())


def _write(directory: Path, name: str, data: dict[str, Any]) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _steps_per_part(slug: str) -> dict[int, int]:
    rows = PlaybookStep.objects.filter(playbook__slug=slug).values("part").annotate(n=Count("id"))
    return {row["part"]: row["n"] for row in rows}


def _step(slug: str, step_id: str) -> PlaybookStep:
    return PlaybookStep.objects.get(playbook__slug=slug, step_id=step_id)


@pytest.fixture
def library(db: None) -> list[Any]:
    return playbook_sync(directory=LIBRARY)


# --- the seed playbook ------------------------------------------------------------------------------


def test_seed_loads_five_parts_with_every_step(library: list[Any]) -> None:
    assert _steps_per_part(SEED_SLUG) == {1: 9, 2: 4, 3: 5, 4: 4, 5: 7}
    positions = list(PlaybookStep.objects.filter(playbook__slug=SEED_SLUG).values_list("position", flat=True))
    assert positions == list(range(1, 30))
    first, last = (_step(SEED_SLUG, "p1-become-aware"), _step(SEED_SLUG, "p5-propose-improvements"))
    assert (first.position, first.number, first.part_title) == (1, "1.1", "Acquire, Preserve, Document Evidence")
    assert (last.position, last.number, last.part_title) == (29, "5.7", "Post-Incident Activity")


def test_seed_row_records_source_and_upstream(library: list[Any]) -> None:
    playbook = Playbook.objects.get(slug=SEED_SLUG)
    assert playbook.version == 1
    assert playbook.source_file == SEED_FILE
    assert playbook.source_sha256 == hashlib.sha256((LIBRARY / SEED_FILE).read_bytes()).hexdigest()
    assert playbook.upstream_repository == "aws-samples/aws-incident-response-playbooks"
    assert playbook.upstream_path.endswith("EKS Findings/IRP-GD-SuccessfulAnonymousAccess-Kubernetes.md")
    assert playbook.upstream_commit == "c1606ca8e627a62ecc4373cb815c5230e04a86c9"
    assert "Discovery:Kubernetes/SuccessfulAnonymousAccess" in playbook.finding_types
    assert playbook.is_fallback is False
    assert playbook.document["slug"] == SEED_SLUG
    assert len(playbook.document["parts"]) == 5


def test_seed_owner_contact_is_a_decision_between_part_5_and_part_2(library: list[Any]) -> None:
    step = _step(SEED_SLUG, "p1-contact-owner")
    assert (step.kind, step.number) == (PlaybookStep.Kind.DECISION, "1.9")
    options = {option["id"]: option for option in step.options}
    assert len(options) == 2
    assert options["authorized"]["goto"] == "part-5"
    assert options["authorized"]["not_applicable"] == ["part-2", "part-3", "part-4"]
    assert options["not-authorized"]["goto"] == "part-2"
    assert options["not-authorized"]["not_applicable"] == ["p5-propose-improvements"]
    assert _step(SEED_SLUG, "p5-propose-improvements").mandatory is False


def test_seed_iam_user_query_uses_and(library: list[Any]) -> None:
    step = _step(SEED_SLUG, "p3-example-queries")
    queries = {query["name"]: query for query in step.queries}
    assert list(queries) == ["principal_call_summary", "user_events_after_date", "iam_user_events_after_date"]
    iam_sql = queries["iam_user_events_after_date"]["sql"]
    assert "AND eventname not like '%List%'" in iam_sql
    assert "OR eventname not like" not in iam_sql
    assert all("OR eventname not like" not in query["sql"] for query in step.queries)


def test_seed_marks_the_automatable_steps(library: list[Any]) -> None:
    actions = dict(
        PlaybookStep.objects.filter(playbook__slug=SEED_SLUG).exclude(action="").values_list("step_id", "action")
    )
    assert actions == {
        "p2-examine-permissions": "rbac.inspect",
        "p2-remove-unauthenticated-bindings": "rbac.remediate",
        "p3-create-athena-table": "query.run",
        "p3-example-queries": "query.run",
    }


def test_seed_records_the_required_fixes(library: list[Any]) -> None:
    playbook = Playbook.objects.get(slug=SEED_SLUG)
    fixes = {fix["id"]: fix for fix in playbook.document["fixes"]}
    assert {"iam-user-query-and", "summary-names-anonymous-access", "review-stakeholders-step-reference"} <= set(fixes)
    assert fixes["iam-user-query-and"]["step"] == "p3-example-queries"
    assert "OR" in fixes["iam-user-query-and"]["original"]
    assert "AND" in fixes["iam-user-query-and"]["corrected"]
    step_ids = set(playbook.steps.values_list("step_id", flat=True))
    assert {fix["step"] for fix in fixes.values()} <= step_ids


def test_seed_review_step_names_the_war_room_step(library: list[Any]) -> None:
    body = _step(SEED_SLUG, "p5-review-with-stakeholders").body
    assert "Step 8" not in body
    assert "step 1.4" in body
    war_room = _step(SEED_SLUG, "p1-war-room")
    assert (war_room.number, war_room.title) == (
        "1.4",
        "Open an incident war room and page in the relevant stakeholders",
    )


def test_seed_description_is_about_anonymous_access(library: list[Any]) -> None:
    description = Playbook.objects.get(slug=SEED_SLUG).description
    assert "for handling successful anonymous access" in description
    assert "privileged container" not in description.lower()
    assert "latest/https://" not in description


def test_seed_commands_are_fixed(library: list[Any]) -> None:
    node_commands = [c["command"] for c in _step(SEED_SLUG, "p1-identify-pod-node-user").commands]
    assert node_commands == ["kubectl get pod <pod> --namespace <ns> -o jsonpath='{.spec.nodeName}'"]
    remediate = _step(SEED_SLUG, "p2-remove-unauthenticated-bindings")
    assert [c["command"] for c in remediate.commands] == [
        "kubectl edit clusterrolebindings system:discovery",
        "kubectl edit clusterrolebindings system:basic-user",
    ]
    # The sample ClusterRoleBinding keeps name/uid under metadata.
    assert "\n  name: system:discovery\n  resourceVersion:" in remediate.body


# --- the other library playbooks --------------------------------------------------------------------


def test_library_loads_all_three_playbooks(library: list[Any]) -> None:
    assert sorted((r.file, r.status) for r in library) == [
        ("discovery-kubernetes-successful-anonymous-access.yaml", "created"),
        ("generic-triage.yaml", "created"),
        ("privilege-escalation-kubernetes-privileged-container.yaml", "created"),
    ]
    assert list(Playbook.objects.filter(is_fallback=True).values_list("slug", flat=True)) == ["generic-triage"]
    assert _steps_per_part(PRIVILEGED_SLUG) == {1: 9, 2: 16, 3: 5, 4: 4, 5: 7}
    assert _steps_per_part("generic-triage") == {1: 6, 2: 2, 3: 2, 4: 2, 5: 3}


def test_privileged_container_playbook_decisions_and_fixes(library: list[Any]) -> None:
    contact = _step(PRIVILEGED_SLUG, "p1-contact-principal")
    assert contact.kind == PlaybookStep.Kind.DECISION
    assert {o["id"]: o["goto"] for o in contact.options} == {"authorized": "part-5", "not-authorized": "part-2"}
    user_type = _step(PRIVILEGED_SLUG, "p2-identify-user-type")
    assert [o["goto"] for o in user_type.options] == [
        "p2-revoke-builtin-admin",
        "p2-revoke-oidc-user",
        "p2-open-aws-auth",
        "p2-revoke-service-account",
    ]
    playbook = Playbook.objects.get(slug=PRIVILEGED_SLUG)
    assert "review-stakeholders-step-reference" in {fix["id"] for fix in playbook.document["fixes"]}
    assert "Step 8" not in _step(PRIVILEGED_SLUG, "p5-review-with-stakeholders").body
    assert "Attention" not in _step(PRIVILEGED_SLUG, "p2-isolate-pod").body


def test_generic_triage_decision_offers_three_outcomes(library: list[Any]) -> None:
    decision = _step("generic-triage", "g2-decide")
    assert {o["id"]: o["goto"] for o in decision.options} == {
        "true-positive": "part-3",
        "authorized": "part-5",
        "false-positive": "part-5",
    }
    assert Playbook.objects.get(slug="generic-triage").finding_types == []


# --- sync behaviour ---------------------------------------------------------------------------------


def test_second_sync_creates_nothing(library: list[Any]) -> None:
    step_count = PlaybookStep.objects.count()

    again = playbook_sync(directory=LIBRARY)

    assert {r.status for r in again} == {"unchanged"}
    assert Playbook.objects.count() == 3
    assert PlaybookStep.objects.count() == step_count


def test_changed_file_with_same_version_is_refused(db: None, tmp_path: Path) -> None:
    # given a loaded library
    directory = _library_copy(tmp_path)
    playbook_sync(directory=directory)
    steps_before = PlaybookStep.objects.count()
    # when the seed changes without a version bump, and a new playbook arrives in the same run
    seed = directory / SEED_FILE
    seed.write_text(seed.read_text().replace("title: Confirm a ticket", "title: Check a ticket", 1))
    new = _fixture_data() | {"slug": "another-playbook", "fallback": False}
    _write(directory, "another.yaml", new)
    # then the run is refused before anything is written
    with pytest.raises(PlaybookValidationError) as excinfo:
        playbook_sync(directory=directory)
    assert str(excinfo.value) == f"{SEED_FILE}: content changed but version 1 is already loaded; bump the version"
    assert not Playbook.objects.filter(slug="another-playbook").exists()
    assert PlaybookStep.objects.count() == steps_before
    assert _step(SEED_SLUG, "p1-confirm-ticket").title.startswith("Confirm a ticket")


def test_bumped_version_creates_second_row_and_keeps_the_first(db: None, tmp_path: Path) -> None:
    # given a loaded library
    directory = _library_copy(tmp_path)
    playbook_sync(directory=directory)
    first = Playbook.objects.get(slug=SEED_SLUG)
    # when the seed changes and its version is bumped
    seed = directory / SEED_FILE
    text = seed.read_text().replace("version: 1\n", "version: 2\n", 1)
    seed.write_text(text.replace("title: Confirm a ticket", "title: Check a ticket", 1))
    results = {r.file: (r.version, r.status) for r in playbook_sync(directory=directory)}
    # then v2 is created next to an untouched v1
    assert results[SEED_FILE] == (2, "created")
    assert results["generic-triage.yaml"] == (1, "unchanged")
    assert list(Playbook.objects.filter(slug=SEED_SLUG).order_by("version").values_list("version", flat=True)) == [
        1,
        2,
    ]
    first_again = Playbook.objects.get(pk=first.pk)
    assert first_again.source_sha256 == first.source_sha256
    assert first_again.steps.get(step_id="p1-confirm-ticket").title.startswith("Confirm a ticket")
    assert first_again.steps.count() == 29
    second = Playbook.objects.get(slug=SEED_SLUG, version=2)
    assert second.steps.get(step_id="p1-confirm-ticket").title.startswith("Check a ticket")
    assert second.steps.count() == 29


def test_fixture_document_is_valid(db: None, tmp_path: Path) -> None:
    _write(tmp_path / "lib", "valid.yaml", _fixture_data())

    results = playbook_sync(directory=tmp_path / "lib")

    assert [(r.slug, r.status) for r in results] == [("fixture-playbook", "created")]
    step = PlaybookStep.objects.get(step_id="s1-task")
    assert step.commands == [{"description": "Show pods", "command": "kubectl get pods"}]
    assert step.queries == [{"name": "recent_events", "description": "Recent events", "sql": "select 1;"}]
    assert _step("fixture-playbook", "s3-optional").mandatory is False


# --- rejected documents -----------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    return data["parts"][0]["steps"]


def _decision(data: dict[str, Any]) -> dict[str, Any]:
    return data["parts"][0]["steps"][1]


REJECTIONS: list[Any] = [
    pytest.param(lambda d: d.update(colour="red"), ["unknown key 'colour'"], id="unknown-top-level-key"),
    pytest.param(
        lambda d: _steps(d)[0].update(colour="red"), ["step 's1-task'", "unknown key 'colour'"], id="unknown-step-key"
    ),
    pytest.param(
        lambda d: _decision(d)["options"][0].update(colour="red"),
        ["step 's1-decide'", "options.0", "unknown key 'colour'"],
        id="unknown-option-key",
    ),
    pytest.param(
        lambda d: d["upstream"].update(branch="main"), ["upstream", "unknown key 'branch'"], id="unknown-upstream-key"
    ),
    pytest.param(
        lambda d: d["parts"][1].update(colour="red"), ["parts.1", "unknown key 'colour'"], id="unknown-part-key"
    ),
    pytest.param(
        lambda d: d["parts"][1]["steps"][0].update(id="s1-task"),
        ["step 's1-task': duplicate step id"],
        id="duplicate-step-id",
    ),
    pytest.param(lambda d: d["parts"][2].update(number=2), ["duplicate part number 2"], id="duplicate-part-number"),
    pytest.param(
        lambda d: _decision(d)["options"][0].update(goto="part-9"),
        ["step 's1-decide': option 'yes-option': goto 'part-9' does not exist"],
        id="dangling-goto-part",
    ),
    pytest.param(
        lambda d: _decision(d)["options"][1].update(goto="s9-missing"),
        ["step 's1-decide': option 'no-option': goto 's9-missing' does not exist"],
        id="dangling-goto-step",
    ),
    pytest.param(
        lambda d: _decision(d)["options"][0].update(not_applicable=["part-2", "s9-missing"]),
        ["step 's1-decide': option 'yes-option': not_applicable 's9-missing' does not exist"],
        id="dangling-not-applicable",
    ),
    pytest.param(
        lambda d: _decision(d)["options"][0].update(not_applicable=["part-3"]),
        ["step 's1-decide': option 'yes-option': goto 'part-3' is also listed as not_applicable"],
        id="goto-also-not-applicable",
    ),
    pytest.param(
        lambda d: _decision(d)["options"][0].update(not_applicable=["part-1"]),
        ["step 's1-decide': option 'yes-option': not_applicable 'part-1' contains the decision itself"],
        id="not-applicable-own-part",
    ),
    pytest.param(
        lambda d: _decision(d).update(options=_decision(d)["options"][:1]),
        ["step 's1-decide'", "a decision needs at least 2 options, found 1"],
        id="decision-with-one-option",
    ),
    pytest.param(
        lambda d: _decision(d).pop("options"),
        ["step 's1-decide'", "a decision needs at least 2 options, found 0"],
        id="decision-without-options",
    ),
    pytest.param(
        lambda d: _steps(d)[0].update(options=copy.deepcopy(_decision(d)["options"])),
        ["step 's1-task'", "options are only allowed on a decision step"],
        id="options-on-task",
    ),
    pytest.param(
        lambda d: _steps(d)[0].update(action="rbac.delete"),
        ["step 's1-task'", "action", "'rbac.inspect', 'rbac.remediate' or 'query.run'"],
        id="unknown-action",
    ),
    pytest.param(
        lambda d: d["fixes"][0].update(step="s9-missing"),
        ["fix 'fix-one': step 's9-missing' does not exist"],
        id="fix-on-missing-step",
    ),
    pytest.param(lambda d: d.pop("upstream"), ["`upstream` is required"], id="fixes-without-upstream"),
    pytest.param(
        lambda d: _decision(d)["options"][1].update(id="yes-option"),
        ["step 's1-decide'", "duplicate option id 'yes-option'"],
        id="duplicate-option-id",
    ),
    pytest.param(lambda d: d.update(version=0), ["version", "greater than 0"], id="version-zero"),
    pytest.param(lambda d: d.update(version=-3), ["version", "greater than 0"], id="version-negative"),
    pytest.param(lambda d: d.update(version="2"), ["version", "valid integer"], id="version-as-string"),
    pytest.param(
        lambda d: _steps(d)[0].update(number=1.1),
        ["step 's1-task'", "number", "valid string"],
        id="unquoted-step-number",
    ),
    pytest.param(
        lambda d: _steps(d)[0].pop("title"), ["step 's1-task'", "title", "Field required"], id="step-without-title"
    ),
    pytest.param(
        lambda d: d["parts"][1]["steps"][0].update(id="part-7"), ["'part-7'", "part reference"], id="step-id-like-part"
    ),
    pytest.param(
        lambda d: d.update(fallback=False, finding_types=[]),
        ["finding_types may be empty only for the fallback playbook"],
        id="no-finding-types",
    ),
    pytest.param("slug: [unclosed\n", ["invalid YAML"], id="invalid-yaml"),
    pytest.param("- just\n- a list\n", ["the top level must be a mapping, found list"], id="top-level-list"),
    pytest.param("slug: a\nslug: b\n", ["invalid YAML", "duplicate key 'slug'"], id="duplicate-yaml-key"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("change", "expected"), REJECTIONS)
def test_invalid_document_is_rejected(tmp_path: Path, change: Mutation | str, expected: list[str]) -> None:
    directory = tmp_path / "lib"
    directory.mkdir()
    if isinstance(change, str):
        (directory / "broken.yaml").write_text(change)
    else:
        data = _fixture_data()
        change(data)
        _write(directory, "broken.yaml", data)

    with pytest.raises(PlaybookValidationError) as excinfo:
        playbook_sync(directory=directory)

    message = str(excinfo.value)
    assert message.startswith("broken.yaml: ")
    for part in expected:
        assert part in message
    assert Playbook.objects.count() == 0


@pytest.mark.django_db
def test_two_fallback_playbooks_are_rejected_naming_both_files(tmp_path: Path) -> None:
    directory = tmp_path / "lib"
    _write(directory, "a.yaml", _fixture_data())
    _write(directory, "b.yaml", _fixture_data() | {"slug": "other", "finding_types": ["Test:EC2/Other"]})

    with pytest.raises(
        PlaybookValidationError, match=r"exactly one playbook with fallback: true, found 2: a\.yaml, b\.yaml"
    ):
        playbook_sync(directory=directory)
    assert Playbook.objects.count() == 0


@pytest.mark.django_db
def test_library_without_fallback_is_rejected(tmp_path: Path) -> None:
    directory = tmp_path / "lib"
    _write(directory, "a.yaml", _fixture_data() | {"fallback": False})

    with pytest.raises(PlaybookValidationError, match=r"found 0: none among a\.yaml"):
        playbook_sync(directory=directory)
    assert Playbook.objects.count() == 0


@pytest.mark.django_db
def test_finding_type_claimed_by_two_files_is_rejected(tmp_path: Path) -> None:
    directory = tmp_path / "lib"
    _write(directory, "a.yaml", _fixture_data())
    _write(directory, "b.yaml", _fixture_data() | {"slug": "other", "fallback": False})

    with pytest.raises(PlaybookValidationError, match="a.yaml, b.yaml: finding type 'Test:Kubernetes/FixtureFinding'"):
        playbook_sync(directory=directory)
    assert Playbook.objects.count() == 0


@pytest.mark.django_db
def test_missing_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PlaybookValidationError, match="not a directory"):
        playbook_sync(directory=tmp_path / "nowhere")


# --- the management command -------------------------------------------------------------------------


@pytest.mark.django_db
def test_command_prints_one_line_per_file(tmp_path: Path) -> None:
    directory = _library_copy(tmp_path)
    out = StringIO()

    call_command("sync_playbooks", "--dir", str(directory), stdout=out)
    call_command("sync_playbooks", "--dir", str(directory), stdout=out)

    assert out.getvalue().splitlines() == [
        f"{SEED_FILE}: {SEED_SLUG} v1 created",
        "generic-triage.yaml: generic-triage v1 created",
        f"privilege-escalation-kubernetes-privileged-container.yaml: {PRIVILEGED_SLUG} v1 created",
        f"{SEED_FILE}: {SEED_SLUG} v1 unchanged",
        "generic-triage.yaml: generic-triage v1 unchanged",
        f"privilege-escalation-kubernetes-privileged-container.yaml: {PRIVILEGED_SLUG} v1 unchanged",
    ]


@pytest.mark.django_db
def test_command_defaults_to_the_configured_directory(tmp_path: Path, settings: Any) -> None:
    _write(tmp_path / "lib", "valid.yaml", _fixture_data())
    settings.WATCHPOST_PLAYBOOK_DIR = tmp_path / "lib"
    out = StringIO()

    call_command("sync_playbooks", stdout=out)

    assert out.getvalue() == "valid.yaml: fixture-playbook v1 created\n"
    assert Playbook.objects.filter(slug="fixture-playbook").exists()


@pytest.mark.django_db
def test_command_fails_with_the_validation_error(tmp_path: Path) -> None:
    data = _fixture_data()
    _decision(data)["options"][0]["goto"] = "part-9"
    _write(tmp_path / "lib", "bad.yaml", data)

    with pytest.raises(
        CommandError, match="bad.yaml: step 's1-decide': option 'yes-option': goto 'part-9' does not exist"
    ):
        call_command("sync_playbooks", "--dir", str(tmp_path / "lib"), stdout=StringIO())
    assert Playbook.objects.count() == 0
