"""The EKS bearer token and connection, checked against moto's STS and EKS servers on loopback."""

import base64
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from moto.moto_server.werkzeug_app import create_backend_app
from werkzeug.serving import make_server

from integrations.kubernetes import client as k8s_client
from integrations.kubernetes.client import Connection, eks_configuration, eks_token


@pytest.fixture(scope="module")
def sts_endpoint() -> Iterator[str]:
    """moto's STS app alone on its own loopback port: the shared server picks a service from the request's
    signature or path, and a presigned GET (signature in the query string) would land on S3 there."""
    server = make_server("127.0.0.1", 0, create_backend_app("sts"), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def aws(moto_server: str, sts_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_EKS"):
        monkeypatch.delenv(name, raising=False)
    k8s_client.token_cache.clear()
    yield moto_server
    k8s_client.token_cache.clear()


def _url(token: str) -> str:
    body = token.removeprefix("k8s-aws-v1.")
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def test_token_is_a_presigned_get_caller_identity_that_signs_the_cluster_header(aws: str) -> None:
    # when
    token = eks_token(boto3.session.Session(region_name="eu-west-1"), cluster_name="payments-prod", region="eu-west-1")
    # then: the format the aws-iam-authenticator accepts
    assert token.startswith("k8s-aws-v1.")
    body = token.removeprefix("k8s-aws-v1.")
    assert "=" not in body and "+" not in body and "/" not in body  # base64url, padding stripped
    url = _url(token)
    query = parse_qs(urlsplit(url).query)
    assert query["Action"] == ["GetCallerIdentity"]
    assert query["X-Amz-SignedHeaders"] == ["host;x-k8s-aws-id"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Signature"][0]
    assert len(token) <= 4096  # the authenticator's cap
    # and STS (moto) answers the presigned call the way the EKS authenticator makes it
    assert url.startswith(os.environ["AWS_ENDPOINT_URL_STS"] + "/?Action=GetCallerIdentity")
    answer = requests.get(url, headers={"x-k8s-aws-id": "payments-prod"}, timeout=10)
    assert answer.status_code == 200 and "<GetCallerIdentityResult>" in answer.text


def test_describe_cluster_gives_endpoint_ca_and_a_cached_refreshed_token(aws: str) -> None:
    # given: an EKS cluster in moto
    eks = boto3.client("eks", region_name="eu-west-1")
    eks.create_cluster(
        name="payments-prod",
        roleArn="arn:aws:iam::123456789012:role/eks",
        resourcesVpcConfig={"subnetIds": ["subnet-1"]},
    )
    described = eks.describe_cluster(name="payments-prod")["cluster"]
    connection = Connection(
        name="payments-prod", eks_name="payments-prod", region="eu-west-1", account_id="123456789012"
    )
    # when
    configuration = eks_configuration(connection)
    # then
    assert configuration.host == described["endpoint"]
    assert Path(configuration.ssl_ca_cert).read_bytes() == base64.b64decode(described["certificateAuthority"]["data"])
    header = configuration.get_api_key_with_prefix("BearerToken")
    assert header is not None and header.startswith("Bearer k8s-aws-v1.")
    # the token is reused while fresh, and replaced before each request once it is not
    key = ("123456789012", "", "eu-west-1", "payments-prod")
    k8s_client.token_cache._tokens[key] = ("k8s-aws-v1.still-fresh", time.monotonic() + 60)
    assert configuration.get_api_key_with_prefix("BearerToken") == "Bearer k8s-aws-v1.still-fresh"
    k8s_client.token_cache._tokens[key] = ("k8s-aws-v1.expired", time.monotonic() - 1)
    fresh = configuration.get_api_key_with_prefix("BearerToken")
    assert fresh is not None and fresh != "Bearer k8s-aws-v1.expired" and fresh.startswith("Bearer k8s-aws-v1.")
    assert "payments-prod" not in fresh  # the name travels in the signed header, not the URL
