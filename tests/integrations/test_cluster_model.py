"""Cluster records: how each kind of connection must be filled in, and what the client is given."""

import pytest
from django.core.exceptions import ValidationError

from integrations.models import AwsAccount, Cluster
from integrations.services import cluster_connection

pytestmark = pytest.mark.django_db


def test_an_eks_cluster_needs_its_account_and_region() -> None:
    with pytest.raises(ValidationError, match="account and region"):
        Cluster(name="prod", via=Cluster.Via.EKS).full_clean()


def test_a_kubeconfig_cluster_needs_the_file() -> None:
    with pytest.raises(ValidationError) as caught:
        Cluster(name="kind", via=Cluster.Via.KUBECONFIG).full_clean()
    assert "kubeconfig_path" in caught.value.message_dict


def test_an_eks_connection_carries_the_accounts_role() -> None:
    account = AwsAccount.objects.create(
        name="payments",
        account_id="210987654321",
        role_arn="arn:aws:iam::210987654321:role/watchpost",
        external_id="wp-ext-1",
        regions="eu-west-1",
    )
    cluster = Cluster.objects.create(name="payments-prod", via=Cluster.Via.EKS, account=account, region="eu-west-1")
    connection = cluster_connection(cluster)
    assert connection.is_eks and connection.eks_name == "payments-prod" and connection.region == "eu-west-1"
    assert (connection.role_arn, connection.external_id) == (account.role_arn, "wp-ext-1")
