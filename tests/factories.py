"""factory_boy factories shared by the test suite.

Roles are the Django groups created by migration `incidents/0003_roles`; the factories look them up
rather than create them, so a test fails loudly if the migration stops creating a role.
"""

import hashlib

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from playbooks.models import Playbook, PlaybookStep


class UserFactory(factory.django.DjangoModelFactory):
    """`UserFactory(role="responder")` puts the user in that role's group."""

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.test")
    # Unusable by default (hashing is slow); `UserFactory(password="…")` sets a real one for login tests.
    password = factory.django.Password(None)

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        if not create or not extracted:
            return
        self.groups.add(Group.objects.get(name=extracted))
        # permissions caches the groups on the instance; a freshly added group must be seen.
        self.__dict__.pop("_watchpost_groups", None)


class PlaybookFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Playbook

    slug = factory.Sequence(lambda n: f"playbook-{n}")
    version = 1
    title = factory.LazyAttribute(lambda pb: f"Playbook {pb.slug}")
    description = "A playbook built for tests."
    finding_types = factory.LazyFunction(list)
    source_file = factory.LazyAttribute(lambda pb: f"{pb.slug}.yaml")
    source_sha256 = factory.LazyAttribute(lambda pb: hashlib.sha256(f"{pb.slug}:{pb.version}".encode()).hexdigest())


class PlaybookStepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PlaybookStep

    playbook = factory.SubFactory(PlaybookFactory)
    step_id = factory.Sequence(lambda n: f"step-{n}")
    part = 1
    part_title = factory.LazyAttribute(lambda step: f"Part {step.part}")
    position = factory.Sequence(lambda n: n + 1)
    number = factory.LazyAttribute(lambda step: f"{step.part}.{step.position}")
    title = factory.LazyAttribute(lambda step: f"Do {step.step_id}")
    body = ""
    kind = PlaybookStep.Kind.TASK
    mandatory = True
