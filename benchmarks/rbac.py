"""P10: the RBAC exposure scan over 10k bindings and 2k roles, against `json.loads` of the same payloads.

`make bench-rbac` (or `python benchmarks/rbac.py [--bindings N --roles N --rounds N]`). No database, no
server: the payloads are API list pages (500 items each, as the scan fetches them) built in memory with a
fixed seed, and both sides are measured in this process, interleaved, best of N rounds:

  reference  json.loads of every page
  scan       json.loads of every page + `exposure_analyse` (role index, risk of every referenced role,
             classification, GitOps owner, effective permissions of anonymous rows) + `plan_compute`

Goal (PERF-REL-SEC.md P10): scan ≤ 3 × reference and ≤ 1 s; the client's model classes are never built.
A measurement, not a test: the exit status is 0 even when a goal fails (printed as FAIL).
"""

import argparse
import gc
import json
import random
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from integrations.kubernetes.rbac import RbacObjects, exposure_analyse  # noqa: E402
from integrations.kubernetes.remediation import plan_compute  # noqa: E402

GROUP = "rbac.authorization.k8s.io"
PAGE = 500
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]
RESOURCES = ["pods", "services", "configmaps", "secrets", "deployments", "jobs", "ingresses", "events", "pods/exec"]
SUBJECTS = [("Group", "system:authenticated"), ("Group", "system:unauthenticated"), ("User", "system:anonymous")]


def _meta(rng: random.Random, name: str, namespace: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {  # a realistic size per object: kubectl's last-applied annotation dominates
        "name": name,
        "uid": f"{rng.getrandbits(128):032x}",
        "resourceVersion": str(rng.randint(1, 10**8)),
        "creationTimestamp": "2024-05-02T10:14:02Z",
        "labels": {"app.kubernetes.io/part-of": f"team-{rng.randint(1, 40)}"},
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}" * rng.randint(5, 60)},
    }
    if namespace:
        meta["namespace"] = namespace
    if rng.random() < 0.05:
        meta["labels"]["app.kubernetes.io/instance"] = "platform-rbac"
    return meta


def _rules(rng: random.Random) -> list[dict[str, Any]]:
    rules = []
    for _ in range(rng.randint(2, 8)):
        if rng.random() < 0.1:
            rules.append(
                {"nonResourceURLs": ["/healthz", "/version", "/metrics"][: rng.randint(1, 3)], "verbs": ["get"]}
            )
        else:
            rules.append(
                {
                    "apiGroups": rng.sample(["", "apps", "batch", "networking.k8s.io"], rng.randint(1, 2)),
                    "resources": rng.sample(RESOURCES, rng.randint(1, 4)),
                    "verbs": rng.sample(VERBS, rng.randint(1, 4)),
                }
            )
    return rules


def make_objects(bindings: int, roles: int, seed: int = 1414) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    namespaces = [f"team-{i}" for i in range(200)]
    cluster_roles = [
        {
            "kind": "ClusterRole",
            "apiVersion": f"{GROUP}/v1",
            "metadata": _meta(rng, f"cr-{i}", None),
            "rules": _rules(rng),
        }
        for i in range(roles // 4)
    ]
    ns_roles = [
        {
            "kind": "Role",
            "apiVersion": f"{GROUP}/v1",
            "metadata": _meta(rng, f"role-{i}", rng.choice(namespaces)),
            "rules": _rules(rng),
        }
        for i in range(roles - len(cluster_roles))
    ]
    crbs, rbs = [], []
    for i in range(bindings):
        subjects = [
            {"kind": "ServiceAccount", "name": f"sa-{rng.randint(1, 999)}", "namespace": rng.choice(namespaces)}
            for _ in range(rng.randint(1, 3))
        ]
        if rng.random() < 0.02:  # a few anonymous grants, and some for system:authenticated
            kind, name = rng.choice(SUBJECTS)
            subjects.append({"kind": kind, "name": name, "apiGroup": GROUP})
        if i % 5 == 0:
            ref = rng.choice(cluster_roles)["metadata"]["name"]
            crbs.append(
                {
                    "kind": "ClusterRoleBinding",
                    "apiVersion": f"{GROUP}/v1",
                    "metadata": _meta(rng, f"crb-{i}", None),
                    "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": ref},
                    "subjects": subjects,
                }
            )
        else:
            role = rng.choice(ns_roles)
            rbs.append(
                {
                    "kind": "RoleBinding",
                    "apiVersion": f"{GROUP}/v1",
                    "metadata": _meta(rng, f"rb-{i}", role["metadata"]["namespace"]),
                    "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": role["metadata"]["name"]},
                    "subjects": subjects,
                }
            )
    return {"clusterroles": cluster_roles, "roles": ns_roles, "clusterrolebindings": crbs, "rolebindings": rbs}


def pages(objects: dict[str, list[dict[str, Any]]]) -> dict[str, list[bytes]]:
    """Each kind as the API returns it: List documents of PAGE items, serialised."""
    out: dict[str, list[bytes]] = {}
    for kind, items in objects.items():
        out[kind] = [
            json.dumps(
                {
                    "kind": "List",
                    "apiVersion": f"{GROUP}/v1",
                    "metadata": {"continue": "x"},
                    "items": items[i : i + PAGE],
                }
            ).encode()
            for i in range(0, max(len(items), 1), PAGE)
        ]
    return out


def parse_only(payloads: dict[str, list[bytes]]) -> dict[str, list[dict[str, Any]]]:
    return {kind: [item for body in bodies for item in json.loads(body)["items"]] for kind, bodies in payloads.items()}


def scan(payloads: dict[str, list[bytes]]) -> tuple[int, int]:
    parsed = parse_only(payloads)
    objects = RbacObjects(
        cluster_roles=tuple(parsed["clusterroles"]),
        roles=tuple(parsed["roles"]),
        cluster_role_bindings=tuple(parsed["clusterrolebindings"]),
        role_bindings=tuple(parsed["rolebindings"]),
    )
    report = exposure_analyse(objects)
    plan = plan_compute(objects)
    return len(report.rows), len(plan.changes)


def timed(fn: Any, arg: Any) -> float:
    gc.collect()
    start = time.perf_counter()
    fn(arg)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bindings", type=int, default=10_000)
    parser.add_argument("--roles", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    payloads = pages(make_objects(args.bindings, args.roles))
    size = sum(len(body) for bodies in payloads.values() for body in bodies)
    rows, changes = scan(payloads)
    print(
        f"P10 RBAC scan: {args.bindings:,} bindings, {args.roles:,} roles, {size / 1e6:.1f} MB of list pages; "
        f"{rows} anonymous rows, {changes} planned changes"
    )
    reference, measured = [], []
    for _ in range(args.rounds):  # interleaved, so drift on a shared machine hits both sides alike
        reference.append(timed(parse_only, payloads))
        measured.append(timed(scan, payloads))
    tracemalloc.start()
    scan(payloads)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    best_ref, best_scan = min(reference), min(measured)
    ratio = best_scan / best_ref
    ok = ratio <= 3 and best_scan <= 1.0
    median_ref, median_scan = sorted(reference)[len(reference) // 2], sorted(measured)[len(measured) // 2]
    print(f"  reference json.loads   best {best_ref * 1000:7.1f} ms  (median {median_ref * 1000:.1f})")
    print(
        f"  scan (parse+analyse)   best {best_scan * 1000:7.1f} ms  (median {median_scan * 1000:.1f}); "
        f"peak traced memory {peak / 1e6:.0f} MB"
    )
    print(f"  ratio {ratio:.2f} × parse-only (goal ≤ 3), {best_scan:.3f} s (goal ≤ 1 s): {'ok' if ok else 'FAIL <<<'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
