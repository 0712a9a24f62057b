"""A SANDBOX Kubernetes API server: just the RBAC and authorization APIs Watchpost uses, on loopback.

For `make run`, the tests and demos. It is not a cluster and runs no workloads; it answers the HTTP API
the official `kubernetes` client speaks, so the app reaches it by the same code path as EKS. Its RBAC
evaluation (`authz`) is written independently of the analysis in `integrations.kubernetes.rbac`, so a
mistake in one is not mirrored by the other.
"""
