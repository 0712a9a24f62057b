"""The sandbox's HTTP front: routing, bearer-token authentication, authorisation, discovery, SAR.

Stdlib only (`http.server` with a thread per request). Answers what the `kubernetes` client asks for
with the shapes and status codes of a real API server (Status objects for errors, 401 without a valid
token, 403 worded like the real one, 409 on a stale resourceVersion).
"""

import json
import secrets
import threading
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from integrations.kubernetes.sandbox.authz import Attributes, authorize
from integrations.kubernetes.sandbox.bootstrap import default_objects
from integrations.kubernetes.sandbox.store import GROUP, RESOURCES, ApiError, Store

AUTHZ_GROUP = "authorization.k8s.io"
ADMIN_USER = "sandbox-admin"
VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-watchpost-sandbox",
    "platform": "linux/amd64",
    "goVersion": "n/a (Watchpost sandbox)",
}
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz")


def scenario_load(path: str | Path) -> list[dict[str, Any]]:
    """A scenario file: a YAML/JSON list of RBAC objects, a Kubernetes `List`, or several YAML documents."""
    docs = [doc for doc in yaml.safe_load_all(Path(path).read_text(encoding="utf-8")) if doc is not None]
    objects: list[dict[str, Any]] = []
    for doc in docs:
        if isinstance(doc, list):
            objects.extend(doc)
        elif isinstance(doc, dict) and doc.get("kind", "").endswith("List"):
            objects.extend(doc.get("items") or [])
        elif isinstance(doc, dict):
            objects.append(doc)
        else:
            raise ValueError(f"{path}: a scenario holds RBAC objects, found {type(doc).__name__}")
    return objects


class SandboxCluster:
    """One sandbox API server: `start()` serves on 127.0.0.1:<port> in a thread; `stop()` ends it."""

    def __init__(self, objects: Iterable[dict[str, Any]] = (), *, port: int = 0, defaults: bool = True) -> None:
        self.store = Store([*(default_objects() if defaults else []), *objects])
        self.admin_token = secrets.token_urlsafe(24)
        # token → (user, groups). The admin is in system:masters, like the EKS cluster creator.
        self.tokens: dict[str, tuple[str, tuple[str, ...]]] = {self.admin_token: (ADMIN_USER, ("system:masters",))}
        self.namespaces: set[str] = {"default", "kube-system", "kube-public"}
        # (method, path) of recent requests, for tests that check what was called; bounded for long runs.
        self.requests: deque[tuple[str, str]] = deque(maxlen=2000)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def token_add(self, user: str, groups: Iterable[str] = ()) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (user, tuple(groups))
        return token

    def kubeconfig(self, *, token: str | None = None, context: str = "watchpost-sandbox") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": token or self.admin_token}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
        }

    def kubeconfig_write(self, path: str | Path, **kwargs: Any) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(mode=0o600)  # it holds a bearer token
        target.write_text(yaml.safe_dump(self.kubeconfig(**kwargs), sort_keys=False), encoding="utf-8")
        return target

    def start(self) -> "SandboxCluster":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="k8s-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def can(self, attrs: Attributes) -> tuple[bool, str]:
        return authorize(attrs, **self.store.rbac_view())


def _handler_for(cluster: SandboxCluster) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        sandbox = cluster

    return Handler


class _Handler(BaseHTTPRequestHandler):
    sandbox: SandboxCluster
    protocol_version = "HTTP/1.1"
    server_version = "watchpost-sandbox-apiserver"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # quiet: the tests start many of these

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # -- plumbing -----------------------------------------------------------------------------
    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        path, query = split.path, {k: v[-1] for k, v in parse_qs(split.query).items()}
        self.sandbox.requests.append((method, self.path))
        try:
            body = self._body()
            user, groups = self._authenticate()
            code, payload = _route(self.sandbox, method, path, query, body, user, groups, self.headers)
        except ApiError as error:
            code, payload = error.code, error.status()
        self._send(code, payload)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ApiError(400, "BadRequest", f"the body is not JSON: {exc.msg}") from exc

    def _authenticate(self) -> tuple[str, tuple[str, ...]]:
        header = self.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        identity = self.sandbox.tokens.get(token) if token else None
        if identity is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        user, groups = identity
        return user, (*groups, "system:authenticated")

    def _send(self, code: int, payload: Any) -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-request (a killed worker): nothing to tell


def _forbidden(user: str, attrs: Attributes) -> ApiError:
    if not attrs.is_resource:
        return ApiError(403, "Forbidden", f'forbidden: User "{user}" cannot {attrs.verb} path "{attrs.path}"')
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    target = f'{attrs.resource}.{attrs.group} "{attrs.name}"' if attrs.name else f"{attrs.resource}.{attrs.group}"
    return ApiError(
        403,
        "Forbidden",
        f'{target} is forbidden: User "{user}" cannot {attrs.verb} resource "{attrs.resource}" '
        f'in API group "{attrs.group}" {where}',
        {"name": attrs.name, "group": attrs.group, "kind": attrs.resource},
    )


def _require(cluster: SandboxCluster, attrs: Attributes) -> None:
    allowed, _ = cluster.can(attrs)
    if not allowed:
        raise _forbidden(attrs.user, attrs)


def _route(
    cluster: SandboxCluster,
    method: str,
    path: str,
    query: dict[str, str],
    body: Any,
    user: str,
    groups: tuple[str, ...],
    headers: Any,
) -> tuple[int, Any]:
    path = path.rstrip("/") or "/"
    parts = [unquote(part) for part in path.strip("/").split("/")] if path != "/" else []
    if len(parts) >= 3 and parts[:3] == ["apis", GROUP, "v1"] and len(parts) > 3:
        return _rbac(cluster, method, parts[3:], query, body, user, groups, headers)
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
        return _namespaces(cluster, method, parts[3] if len(parts) == 4 else "", body, user, groups)
    if parts == ["apis", AUTHZ_GROUP, "v1", "subjectaccessreviews"] and method == "POST":
        _require(cluster, Attributes(user, groups, "create", resource="subjectaccessreviews", group=AUTHZ_GROUP))
        return 201, _subject_access_review(cluster, body)
    if method != "GET":
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")
    _require(cluster, Attributes(user, groups, "get", path=path))
    return 200, _discovery(path)


def _discovery(path: str) -> Any:
    if path in PUBLIC_PATHS:
        return "ok"
    if path == "/version":
        return VERSION
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        groups = [
            {
                "name": name,
                "versions": [{"groupVersion": f"{name}/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": f"{name}/v1", "version": "v1"},
            }
            for name in (GROUP, AUTHZ_GROUP)
        ]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    if path == f"/apis/{GROUP}/v1":
        resources = [
            {
                "name": name,
                "kind": kind,
                "namespaced": namespaced,
                "singularName": "",
                "verbs": ["create", "delete", "get", "list", "patch", "update"],
            }
            for name, (kind, namespaced) in RESOURCES.items()
        ]
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/v1", "resources": resources}
    if path == f"/apis/{AUTHZ_GROUP}/v1":
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{AUTHZ_GROUP}/v1",
            "resources": [
                {
                    "name": "subjectaccessreviews",
                    "kind": "SubjectAccessReview",
                    "namespaced": False,
                    "verbs": ["create"],
                }
            ],
        }
    raise ApiError(404, "NotFound", "the server could not find the requested resource")


def _rbac(
    cluster: SandboxCluster,
    method: str,
    parts: list[str],
    query: dict[str, str],
    body: Any,
    user: str,
    groups: tuple[str, ...],
    headers: Any,
) -> tuple[int, Any]:
    namespace: str | None = None
    if parts[0] == "namespaces":
        if len(parts) < 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace, parts = parts[1], parts[2:]
    resource, name = parts[0], (parts[1] if len(parts) > 1 else "")
    if resource not in RESOURCES or len(parts) > 2:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    namespaced = RESOURCES[resource][1]
    if namespaced and namespace is None and (name or method != "GET"):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if not namespaced and namespace is not None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    ns = namespace or ""
    dry_run = query.get("dryRun") == "All"
    if "dryRun" in query and not dry_run:
        raise ApiError(400, "BadRequest", f"unsupported dryRun value {query['dryRun']!r}; use All")
    verb = {"GET": "get" if name else "list", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[
        method
    ]
    if method in ("PUT", "PATCH", "DELETE") and not name or method == "POST" and name:
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")
    _require(cluster, Attributes(user, groups, verb, resource=resource, group=GROUP, namespace=ns, name=name))
    store = cluster.store
    if verb == "list":
        items, revision, token = store.list(
            resource, namespace, limit=int(query.get("limit") or 0), token=query.get("continue", "")
        )
        kind = RESOURCES[resource][0]
        metadata = {"resourceVersion": revision} | ({"continue": token} if token else {})
        return 200, {"kind": f"{kind}List", "apiVersion": f"{GROUP}/v1", "metadata": metadata, "items": items}
    if verb == "get":
        return 200, store.get(resource, ns, name)
    if verb == "create":
        return 201, store.create(resource, ns, body, dry_run=dry_run)
    if verb == "update":
        return 200, store.update(resource, ns, name, body, dry_run=dry_run)
    if verb == "patch":
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip()
        return 200, store.patch(resource, ns, name, body, content_type=content_type, dry_run=dry_run)
    return 200, store.delete(resource, ns, name, body or {}, dry_run=dry_run)


def _namespaces(
    cluster: SandboxCluster, method: str, name: str, body: Any, user: str, groups: tuple[str, ...]
) -> tuple[int, Any]:
    """Namespaces as names only (the RBAC objects do not need them to exist, as on a real server they would)."""
    verb = {"GET": "get" if name else "list", "POST": "create", "DELETE": "delete"}.get(method)
    if verb is None or (verb == "create") == bool(name) or (verb == "delete" and not name):
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")
    _require(cluster, Attributes(user, groups, verb, resource="namespaces", name=name))
    with cluster.store.lock:
        known = cluster.namespaces | {
            o["metadata"].get("namespace") for r in ("roles", "rolebindings") for o in cluster.store.data[r].values()
        }
        if verb == "list":
            items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in sorted(known)]
            return 200, {"kind": "NamespaceList", "apiVersion": "v1", "metadata": {}, "items": items}
        if verb == "create":
            name = ((body or {}).get("metadata") or {}).get("name") or ""
            if not name or name in known:
                raise ApiError(409, "AlreadyExists", f'namespaces "{name}" already exists')
            cluster.namespaces.add(name)
            return 201, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        if name not in known:
            raise ApiError(404, "NotFound", f'namespaces "{name}" not found')
        if verb == "delete":
            cluster.namespaces.discard(name)
        return 200, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _subject_access_review(cluster: SandboxCluster, body: Any) -> dict[str, Any]:
    spec = (body or {}).get("spec") or {}
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if bool(resource) == bool(non_resource):
        raise ApiError(
            422,
            "Invalid",
            "SubjectAccessReview.authorization.k8s.io is invalid: exactly one of "
            "spec.resourceAttributes and spec.nonResourceAttributes must be set",
        )
    user, groups = spec.get("user") or "", tuple(spec.get("groups") or [])
    if not user and not groups:
        raise ApiError(
            422,
            "Invalid",
            "SubjectAccessReview.authorization.k8s.io is invalid: "
            "spec.user: Invalid value: at least one of user or group must be specified",
        )
    if resource:
        attrs = Attributes(
            user,
            groups,
            resource.get("verb") or "",
            resource=resource.get("resource") or "",
            group=resource.get("group") or "",
            subresource=resource.get("subresource") or "",
            namespace=resource.get("namespace") or "",
            name=resource.get("name") or "",
        )
    else:
        assert non_resource is not None
        attrs = Attributes(user, groups, non_resource.get("verb") or "", path=non_resource.get("path") or "")
    # Like the real authorizer, groups are exactly those given: nothing is added for the subject.
    allowed, reason = cluster.can(attrs)
    return {
        "kind": "SubjectAccessReview",
        "apiVersion": f"{AUTHZ_GROUP}/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": {"allowed": allowed} | ({"reason": reason} if reason else {}),
    }
