"""Kubeconfig texts: the tenant cluster's admin kubeconfig Secret, and one for the simulator itself.

Written by hand (no YAML library) so the simulator stays standard-library only; the output is
plain YAML that `kubernetes.config` and PyYAML both load.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

SECRET_KEYS = ("admin.conf", "super-admin.conf", "admin.svc", "super-admin.svc")


def kubeconfig_yaml(cluster: str, server: str, user: str, token: str, ca_data: str = "") -> str:
    """One-context kubeconfig; `ca_data` is base64 PEM (omitted for the plain-HTTP simulator)."""
    ca_line = f"    certificate-authority-data: {ca_data}\n" if ca_data else ""
    context = f"{user}@{cluster}"
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- cluster:\n"
        f"{ca_line}"
        f"    server: {server}\n"
        f"  name: {cluster}\n"
        "contexts:\n"
        "- context:\n"
        f"    cluster: {cluster}\n"
        f"    user: {user}\n"
        f"  name: {context}\n"
        f"current-context: {context}\n"
        "preferences: {}\n"
        "users:\n"
        f"- name: {user}\n"
        "  user:\n"
        f"    token: {token}\n"
    )


def tenant_host(namespace: str, root_host: str) -> str:
    """`tenant-acme` → `acme.<root>`; the root tenant serves the root domain itself."""
    tenant = namespace.removeprefix("tenant-")
    return root_host if tenant in ("root", "") else f"{tenant}.{root_host}"


def api_host(namespace: str, name: str, spec_host: str, root_host: str) -> str:
    """Spec `host` wins; otherwise `kubernetes-<name>.<tenant host>` (PLATFORM.md a)."""
    return spec_host or f"kubernetes-{name}.{tenant_host(namespace, root_host)}"


def _fake_ca(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).hexdigest()
    pem = (
        "-----BEGIN CERTIFICATE-----\n"
        f"U0lNVUxBVEVEIENBIC0tIE5PVCBBIFJFQUwgQ0VSVElGSUNBVEU{digest[:40]}\n"
        "-----END CERTIFICATE-----\n"
    )
    return base64.b64encode(pem.encode()).decode()


def _token(seed: str, role: str) -> str:
    return hashlib.sha256(f"{seed}/{role}".encode()).hexdigest()[:48]


def admin_kubeconfig_data(namespace: str, name: str, host: str, uid: str) -> dict[str, str]:
    """Base64 `data` of `kubernetes-<name>-admin-kubeconfig`, keyed like Kamaji's Secret."""
    cluster = f"kubernetes-{name}"
    ca = _fake_ca(uid)
    external = f"https://{host}:443"
    internal = f"https://{cluster}.{namespace}.svc:6443"
    texts = {
        "admin.conf": kubeconfig_yaml(cluster, external, "kubernetes-admin", _token(uid, "a"), ca),
        "super-admin.conf": kubeconfig_yaml(
            cluster, external, "kubernetes-super-admin", _token(uid, "s"), ca
        ),
        "admin.svc": kubeconfig_yaml(cluster, internal, "kubernetes-admin", _token(uid, "a"), ca),
        "super-admin.svc": kubeconfig_yaml(
            cluster, internal, "kubernetes-super-admin", _token(uid, "s"), ca
        ),
    }
    return {key: base64.b64encode(text.encode()).decode() for key, text in texts.items()}


def admin_kubeconfig_secret(
    namespace: str, name: str, host: str, owner: dict[str, Any]
) -> dict[str, Any]:
    """The Secret Kamaji writes once the control plane is up; listed as a TenantSecret."""
    uid = owner["uid"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"kubernetes-{name}-admin-kubeconfig",
            "namespace": namespace,
            "labels": {
                "internal.cozystack.io/tenantresource": "true",
                "kamaji.clastix.io/name": f"kubernetes-{name}",
                "kamaji.clastix.io/component": "admin-kubeconfig",
            },
            "ownerReferences": [owner],
        },
        "type": "Opaque",
        "data": admin_kubeconfig_data(namespace, name, host, uid),
    }
