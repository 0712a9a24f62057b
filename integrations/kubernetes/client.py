"""A `kubernetes.client.ApiClient` for one cluster, and the one place Kubernetes errors become ours.

Two ways in:
- a kubeconfig file and context (kind, minikube, the Watchpost sandbox, any cluster a kubeconfig reaches);
- EKS: `eks:DescribeCluster` gives the endpoint and CA; the bearer token is an STS GetCallerIdentity URL,
  presigned with the signed header `x-k8s-aws-id: <cluster name>`, prefixed `k8s-aws-v1.` and base64url
  encoded without padding (DOMAIN.md §2.8; awscli `customizations/eks/get_token.py`). STS accepts such a
  token for 15 minutes from its X-Amz-Date, so it is cached for 14 and refreshed before each request
  that would outlive it.

IAM permissions (EKS): `eks:DescribeCluster` on the cluster ARN, plus `sts:AssumeRole` when the cluster's
account names a role (`integrations.aws.session`). `sts:GetCallerIdentity` needs no permission. The IAM
principal must also be mapped into the cluster (an access entry or aws-auth) to a Kubernetes group that holds
the ClusterRole in `docs/kubernetes-rbac.md`. Kubernetes permissions are named in `rbac` and `remediation`.
"""

import base64
import hashlib
import json
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from integrations.aws.session import CLIENT_CONFIG, account_session, aws_errors
from integrations.errors import PermanentIntegrationError, TransientIntegrationError

if TYPE_CHECKING:
    # The kubernetes package costs ~35 MB of RSS (its generated model classes): imported where a cluster
    # is actually called, so web and worker processes that never reach one do not carry it.
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - the EKS token format's prefix, not a secret
CLUSTER_ID_HEADER = "x-k8s-aws-id"
TOKEN_TTL_SECONDS = 14 * 60  # STS honours the presigned URL for 15 minutes; keep a minute in hand
# (connect, read) seconds for each API call; retries are the Celery task's job.
REQUEST_TIMEOUT = (5.0, 30.0)

_FORBIDDEN = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>\S+) (?:resource "(?P<resource>[^"]+)" in API group "(?P<group>[^"]*)"'
    r'(?: (?P<where>in the namespace "[^"]*"|at the cluster scope))?|path "(?P<path>[^"]+)")'
)


class KubernetesConflictError(PermanentIntegrationError):
    """HTTP 409: the object changed since it was read (or already exists)."""


class KubernetesNotFoundError(PermanentIntegrationError):
    """HTTP 404."""


@dataclass(frozen=True)
class Connection:
    """How to reach one cluster. Either `kubeconfig` (path, optional context) or `eks_name` + `region`."""

    name: str
    kubeconfig: str = ""
    context: str = ""
    eks_name: str = ""
    region: str = ""
    account_id: str = ""
    role_arn: str = ""
    external_id: str = ""

    @property
    def is_eks(self) -> bool:
        return bool(self.eks_name)


# -- EKS token ------------------------------------------------------------------------------------
def eks_token(session: boto3.session.Session, *, cluster_name: str, region: str) -> str:
    """`k8s-aws-v1.` + base64url(presigned STS GetCallerIdentity URL that signs x-k8s-aws-id), no padding."""
    sts = session.client("sts", region_name=region, config=CLIENT_CONFIG)

    # GetCallerIdentity has no such parameter: carry it through the request context into a signed header.
    def take(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if CLUSTER_ID_HEADER in params:
            context[CLUSTER_ID_HEADER] = params.pop(CLUSTER_ID_HEADER)

    def inject(request: Any, **_: Any) -> None:
        if CLUSTER_ID_HEADER in request.context:
            request.headers[CLUSTER_ID_HEADER] = request.context[CLUSTER_ID_HEADER]

    sts.meta.events.register("provide-client-params.sts.GetCallerIdentity", take)
    sts.meta.events.register("before-sign.sts.GetCallerIdentity", inject)
    with aws_errors("STS presign GetCallerIdentity"):
        url = sts.generate_presigned_url(
            "get_caller_identity", Params={CLUSTER_ID_HEADER: cluster_name}, ExpiresIn=60, HttpMethod="GET"
        )
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


class _TokenCache:
    """Tokens per (account, role, region, cluster), reused for TOKEN_TTL_SECONDS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}

    def get(self, connection: Connection) -> str:
        key = (connection.account_id, connection.role_arn, connection.region, connection.eks_name)
        with self._lock:
            cached = self._tokens.get(key)
            if cached and cached[1] > time.monotonic():
                return cached[0]
        session = account_session(
            account_id=connection.account_id,
            role_arn=connection.role_arn,
            external_id=connection.external_id,
            region=connection.region,
        )
        token = eks_token(session, cluster_name=connection.eks_name, region=connection.region)
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + TOKEN_TTL_SECONDS)
        return token

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


token_cache = _TokenCache()


def eks_configuration(connection: Connection) -> "k8s.Configuration":
    """Endpoint and CA from DescribeCluster; the bearer token from the cache, refreshed before it expires."""
    session = account_session(
        account_id=connection.account_id,
        role_arn=connection.role_arn,
        external_id=connection.external_id,
        region=connection.region,
    )
    with aws_errors(f"EKS DescribeCluster {connection.eks_name}"):
        cluster = session.client("eks", region_name=connection.region, config=CLIENT_CONFIG).describe_cluster(
            name=connection.eks_name
        )["cluster"]
    from kubernetes import client as k8s

    configuration = k8s.Configuration()
    configuration.host = cluster["endpoint"]
    configuration.ssl_ca_cert = _ca_file(cluster["certificateAuthority"]["data"])
    configuration.api_key = {"BearerToken": token_cache.get(connection)}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}

    def refresh(conf: "k8s.Configuration") -> None:  # the client calls this before every request
        conf.api_key["BearerToken"] = token_cache.get(connection)

    configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]  # typed as None upstream
    return configuration


def _ca_file(data: str) -> str:
    """The client wants a file path. The CA is public; one file per distinct CA, reused across runs."""
    pem = base64.b64decode(data)
    path = Path(tempfile.gettempdir()) / f"watchpost-eks-ca-{hashlib.sha256(pem).hexdigest()[:24]}.crt"
    if not path.exists() or path.read_bytes() != pem:
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, suffix=".tmp", delete=False) as handle:
            handle.write(pem)
        Path(handle.name).replace(path)  # atomic: a concurrent reader never sees half a file
    return str(path)


def api_client(connection: Connection) -> "k8s.ApiClient":
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    if connection.is_eks:
        return k8s.ApiClient(eks_configuration(connection))
    try:
        return k8s_config.new_client_from_config(
            config_file=connection.kubeconfig or None, context=connection.context or None, persist_config=False
        )
    except (ConfigException, OSError) as exc:
        raise PermanentIntegrationError(f"Kubeconfig for {connection.name}: {exc}") from exc


# -- errors ---------------------------------------------------------------------------------------
def _status_message(exc: "ApiException") -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason or "")
    except (ValueError, AttributeError):
        return str(exc.body or exc.reason or "")


def missing_permission(message: str) -> str:
    """`list clusterrolebindings.rbac.authorization.k8s.io (cluster scope)` from a 403 message, or ''."""
    match = _FORBIDDEN.search(message)
    if not match:
        return ""
    if match["path"]:
        return f"{match['verb']} {match['path']}"
    group = f".{match['group']}" if match["group"] else ""
    where = (match["where"] or "").replace("at the cluster scope", "cluster scope")
    return f"{match['verb']} {match['resource']}{group}" + (f" ({where})" if where else "")


def error_translate(exc: Exception, *, action: str, host: str = "") -> Exception:
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException) and exc.status:
        status, message = int(exc.status), _status_message(exc)
        if status == 401:
            return PermanentIntegrationError(
                f"{action}: 401 Unauthorized: the cluster did not accept Watchpost's credentials "
                "(expired token, or the identity is not mapped into the cluster)."
            )
        if status == 403:
            needed = missing_permission(message)
            hint = f"missing permission: {needed}. " if needed else ""
            return PermanentIntegrationError(f"{action}: 403 Forbidden: {hint}{message}")
        if status == 409:
            return KubernetesConflictError(f"{action}: 409 Conflict: {message}")
        if status == 404:
            return KubernetesNotFoundError(f"{action}: 404 Not Found: {message}")
        if status == 429 or status >= 500:
            return TransientIntegrationError(f"{action}: HTTP {status}: {message}")
        return PermanentIntegrationError(f"{action}: HTTP {status}: {message}")
    if isinstance(exc, Urllib3HTTPError | OSError):
        return TransientIntegrationError(f"{action}: endpoint unreachable{f' ({host})' if host else ''}: {exc}")
    return PermanentIntegrationError(f"{action}: {exc}")


@contextmanager
def k8s_errors(action: str, *, api: "k8s.ApiClient | None" = None) -> Iterator[None]:
    """`with k8s_errors("list ClusterRoleBindings", api=api): ...`."""
    from kubernetes.client.exceptions import ApiException

    try:
        yield
    except (ApiException, Urllib3HTTPError, OSError) as exc:
        host = api.configuration.host if api is not None else ""
        raise error_translate(exc, action=action, host=host) from exc


def response_json(response: Any) -> Any:
    """The body of a `_preload_content=False` response, parsed with json.loads (no model classes)."""
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()
