"""The sandbox's object store: RBAC objects with resourceVersions, preconditions and dry runs.

One lock guards everything; every committed write takes the next resourceVersion from one counter,
as etcd's revision does. Errors carry the HTTP status and `reason` of the Kubernetes `Status` object.
"""

import base64
import copy
import json
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from integrations.kubernetes.sandbox.patching import PatchError, json_patch, merge_patch

GROUP = "rbac.authorization.k8s.io"
# resource → (kind, namespaced)
RESOURCES = {
    "clusterroles": ("ClusterRole", False),
    "clusterrolebindings": ("ClusterRoleBinding", False),
    "roles": ("Role", True),
    "rolebindings": ("RoleBinding", True),
}
RESOURCE_OF_KIND = {kind: resource for resource, (kind, _) in RESOURCES.items()}
READ_ONLY_META = ("uid", "creationTimestamp", "resourceVersion")


@dataclass
class ApiError(Exception):
    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def _key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


class Store:
    def __init__(self, objects: Iterable[dict[str, Any]] = ()) -> None:
        self.lock = threading.RLock()
        self.revision = 1000
        self.data: dict[str, dict[str, dict[str, Any]]] = {resource: {} for resource in RESOURCES}
        # Test hook: called (outside the lock) before each committed write, with (verb, resource, name).
        self.before_write: Callable[[str, str, str], None] | None = None
        for obj in objects:
            self.put(obj)

    # -- loading ------------------------------------------------------------------------------
    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Load an object as is (a scenario replaces a default of the same name)."""
        resource = RESOURCE_OF_KIND.get(obj.get("kind", ""))
        if resource is None:
            raise ValueError(f"the sandbox holds RBAC objects only, not {obj.get('kind')!r}")
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if RESOURCES[resource][1]:
            meta.setdefault("namespace", "default")
        else:
            meta.pop("namespace", None)
        obj.setdefault("apiVersion", f"{GROUP}/v1")
        with self.lock:
            self._stamp(obj, new=True)
            self.data[resource][_key(meta.get("namespace", ""), meta["name"])] = obj
        return obj

    def _stamp(self, obj: dict[str, Any], *, new: bool) -> None:
        self.revision += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self.revision)
        if new:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))

    # -- reads --------------------------------------------------------------------------------
    def list(
        self, resource: str, namespace: str | None, *, limit: int = 0, token: str = ""
    ) -> tuple[list[dict[str, Any]], str, str]:
        """(items, list resourceVersion, continue token); items sorted by namespace then name."""
        after = ""
        if token:
            try:
                after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ApiError(400, "BadRequest", "invalid continue token") from exc
        with self.lock:
            keys = sorted(
                key
                for key, obj in self.data[resource].items()
                if namespace is None or obj["metadata"].get("namespace", "") == namespace
            )
            keys = [key for key in keys if key > after] if after else keys
            page = keys[:limit] if limit else keys
            items = [copy.deepcopy(self.data[resource][key]) for key in page]
            more = bool(limit) and len(keys) > limit
            next_token = base64.urlsafe_b64encode(json.dumps({"after": page[-1]}).encode()).decode() if more else ""
            return items, str(self.revision), next_token

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            obj = self.data[resource].get(_key(namespace, name))
            if obj is None:
                raise self._not_found(resource, name)
            return copy.deepcopy(obj)

    def rbac_view(self) -> dict[str, Any]:
        """The objects the authorizer reads, as one consistent view (not copied: read-only use)."""
        with self.lock:
            return {
                "cluster_roles": {o["metadata"]["name"]: o for o in self.data["clusterroles"].values()},
                "cluster_role_bindings": list(self.data["clusterrolebindings"].values()),
                "roles": {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in self.data["roles"].values()},
                "role_bindings": list(self.data["rolebindings"].values()),
            }

    # -- writes -------------------------------------------------------------------------------
    def create(self, resource: str, namespace: str, body: Any, *, dry_run: bool) -> dict[str, Any]:
        obj = self._validated(resource, namespace, body, name=None)
        name = obj["metadata"]["name"]
        self._hook("create", resource, name)
        with self.lock:
            key = _key(namespace, name)
            if key in self.data[resource]:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{resource}.{GROUP} "{name}" already exists',
                    {"name": name, "group": GROUP, "kind": resource},
                )
            for attr in READ_ONLY_META:
                obj["metadata"].pop(attr, None)
            if dry_run:
                return obj
            self._stamp(obj, new=True)
            self.data[resource][key] = obj
            return copy.deepcopy(obj)

    def update(self, resource: str, namespace: str, name: str, body: Any, *, dry_run: bool) -> dict[str, Any]:
        obj = self._validated(resource, namespace, body, name=name)
        return self._commit(resource, namespace, name, lambda current: obj, dry_run=dry_run, verb="update")

    def patch(
        self, resource: str, namespace: str, name: str, patch: Any, *, content_type: str, dry_run: bool
    ) -> dict[str, Any]:
        def apply(current: dict[str, Any]) -> dict[str, Any]:
            try:
                if content_type == "application/json-patch+json":
                    result = json_patch(current, patch)
                elif content_type == "application/merge-patch+json":
                    result = merge_patch(current, patch)
                elif content_type == "application/strategic-merge-patch+json":
                    result = merge_patch(current, patch, strategic=True)
                else:
                    raise ApiError(
                        415, "UnsupportedMediaType", f"the patch content type {content_type!r} is not supported"
                    )
            except PatchError as exc:
                raise ApiError(422, "Invalid", f"the patch could not be applied: {exc}") from exc
            return self._validated(resource, namespace, result, name=name)

        return self._commit(resource, namespace, name, apply, dry_run=dry_run, verb="patch")

    def delete(
        self, resource: str, namespace: str, name: str, options: dict[str, Any], *, dry_run: bool
    ) -> dict[str, Any]:
        preconditions = options.get("preconditions") or {}
        if not dry_run:
            self._hook("delete", resource, name)
        with self.lock:
            key = _key(namespace, name)
            current = self.data[resource].get(key)
            if current is None:
                raise self._not_found(resource, name)
            self._check_preconditions(resource, name, current, preconditions)
            if not dry_run:
                del self.data[resource][key]
                self.revision += 1
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "group": GROUP, "kind": resource, "uid": current["metadata"]["uid"]},
            }

    def _commit(
        self,
        resource: str,
        namespace: str,
        name: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        dry_run: bool,
        verb: str,
    ) -> dict[str, Any]:
        if not dry_run:
            self._hook(verb, resource, name)
        with self.lock:
            key = _key(namespace, name)
            current = self.data[resource].get(key)
            if current is None:
                raise self._not_found(resource, name)
            new = change(copy.deepcopy(current))
            meta, old_meta = new["metadata"], current["metadata"]
            wanted = meta.get("resourceVersion")
            # Optimistic concurrency: a write that names a resourceVersion must name the current one.
            if wanted and wanted != old_meta["resourceVersion"]:
                raise self._conflict(resource, name)
            if new.get("kind") in ("ClusterRoleBinding", "RoleBinding") and new.get("roleRef") != current.get(
                "roleRef"
            ):
                raise ApiError(
                    422,
                    "Invalid",
                    f'{RESOURCES[resource][0]}.{GROUP} "{name}" is invalid: roleRef: '
                    "Invalid value: cannot change roleRef",
                )
            meta["uid"], meta["creationTimestamp"] = old_meta["uid"], old_meta["creationTimestamp"]
            meta["resourceVersion"] = old_meta["resourceVersion"]
            if dry_run or new == current:
                return copy.deepcopy(new)  # a no-op write keeps its resourceVersion, as on a real server
            self._stamp(new, new=False)
            self.data[resource][key] = new
            return copy.deepcopy(new)

    # -- helpers ------------------------------------------------------------------------------
    def _hook(self, verb: str, resource: str, name: str) -> None:
        if self.before_write is not None:
            self.before_write(verb, resource, name)

    def _validated(self, resource: str, namespace: str, body: Any, *, name: str | None) -> dict[str, Any]:
        kind, namespaced = RESOURCES[resource]
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            raise ApiError(400, "BadRequest", "the body must be an object with metadata")
        obj = copy.deepcopy(body)
        meta = obj["metadata"]
        if name is not None and meta.get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name in the URL")
        if not meta.get("name"):
            raise ApiError(422, "Invalid", f"{kind}.{GROUP} is invalid: metadata.name: Required value")
        if namespaced:
            if meta.get("namespace", namespace) != namespace:
                raise ApiError(400, "BadRequest", "the namespace of the object does not match the namespace in the URL")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if obj.get("kind", kind) != kind:
            raise ApiError(400, "BadRequest", f"expected kind {kind}, got {obj.get('kind')}")
        obj["kind"], obj["apiVersion"] = kind, f"{GROUP}/v1"
        if kind.endswith("Binding") and not (obj.get("roleRef") or {}).get("name"):
            raise ApiError(422, "Invalid", f'{kind}.{GROUP} "{meta["name"]}" is invalid: roleRef.name: Required value')
        return obj

    def _check_preconditions(
        self, resource: str, name: str, current: dict[str, Any], preconditions: dict[str, Any]
    ) -> None:
        wanted_rv, wanted_uid = preconditions.get("resourceVersion"), preconditions.get("uid")
        if (wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]) or (
            wanted_uid and wanted_uid != current["metadata"]["uid"]
        ):
            raise self._conflict(resource, name)

    @staticmethod
    def _not_found(resource: str, name: str) -> ApiError:
        return ApiError(
            404, "NotFound", f'{resource}.{GROUP} "{name}" not found', {"name": name, "group": GROUP, "kind": resource}
        )

    @staticmethod
    def _conflict(resource: str, name: str) -> ApiError:
        return ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {resource}.{GROUP} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            {"name": name, "group": GROUP, "kind": resource},
        )
