"""Kubernetes: the client (kubeconfig or EKS token), RBAC exposure analysis, remediation, and a sandbox server."""
