"""The Kubernetes manifests in deploy/kubernetes validate against the Kubernetes schemas
(``kubernetes-validate``, offline: the schemas ship inside the package), and say what the
production guide promises: four roles, one watcher and one beat, probes on /healthz and
/readyz, resource requests, and a service account with exactly the rights the README lists."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
import yaml

from tests.deploy.documents import DEPLOY, ROOT

# Cozystack's management clusters run Kubernetes 1.33 (v1.6); the manifests use nothing newer.
KUBERNETES_VERSION = "1.33.0"
MANIFESTS = sorted(p for p in (DEPLOY / "kubernetes").glob("*.yaml")
                   if p.name != "kustomization.yaml")


def documents() -> list[tuple[str, dict]]:
    return [(path.name, doc) for path in MANIFESTS
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _name, doc in documents() if doc["kind"] == kind}


@pytest.mark.parametrize(("name", "doc"), documents(),
                         ids=[f"{n}:{d['kind']}/{d['metadata']['name']}" for n, d in documents()])
def test_each_manifest_validates_against_the_kubernetes_schema(name, doc):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_caught():
    deployment = by_kind("Deployment")["portal-web"]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_every_manifest_but_the_examples_and_the_job():
    listed = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    assert set(listed["resources"]) == {p.name for p in MANIFESTS} - {
        "secret.example.yaml", "migrate-job.yaml"}


def _container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_four_roles_one_watcher_and_one_beat():
    deployments = by_kind("Deployment")
    assert set(deployments) == {"portal-web", "portal-worker", "portal-beat", "portal-watcher"}
    for name in ("portal-watcher", "portal-beat"):
        assert deployments[name]["spec"]["replicas"] == 1
        assert deployments[name]["spec"]["strategy"] == {"type": "Recreate"}
    assert _container(deployments["portal-watcher"])["command"][-1] == "watch_platform"


def test_every_role_requests_resources_reads_the_config_and_the_secret():
    for name, deployment in by_kind("Deployment").items():
        container = _container(deployment)
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
        assert sources == {"portal-config", "portal-secrets"}, name
        spec = deployment["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] == "portal"
        assert spec["securityContext"]["runAsNonRoot"] is True
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/run/metrics" in mounts, name  # PROMETHEUS_MULTIPROC_DIR, empty at each start
    config = by_kind("ConfigMap")["portal-config"]["data"]
    assert config["PROMETHEUS_MULTIPROC_DIR"] == "/run/metrics"
    assert config["PLATFORM_IN_CLUSTER"] == "true" and config["TRUSTED_PROXIES"]
    secret = by_kind("Secret")["portal-secrets"]["stringData"]
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "METRICS_TOKEN"} <= set(secret)


def test_the_web_role_is_probed_on_healthz_and_readyz_and_served():
    web = _container(by_kind("Deployment")["portal-web"])
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    headers = {h["name"]: h["value"] for h in web["readinessProbe"]["httpGet"]["httpHeaders"]}
    config = by_kind("ConfigMap")["portal-config"]["data"]
    assert headers["Host"] in config["ALLOWED_HOSTS"].split(",")
    assert headers["X-Forwarded-Proto"] == "https" and config["BEHIND_TLS_PROXY"] == "true"
    assert "--no-proxy-headers" in web["command"]
    service = by_kind("Service")["portal-web"]
    assert service["spec"]["selector"] == by_kind("Deployment")["portal-web"]["spec"][
        "selector"]["matchLabels"]


def _readme_rights() -> set[tuple[str, str, str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Pointing it at a real management cluster", 1)[1].split("\n## ")[0]
    rights = set()
    for group, resource, verbs in re.findall(
            r"^\s*\| `([^`]*)` \| `([a-z]+)` \| ([a-z, ]+) \|", section, flags=re.MULTILINE):
        rights |= {("" if group == "core" else group, resource, verb.strip())
                   for verb in verbs.split(",")}
    return rights


def test_the_service_account_has_exactly_the_rights_the_readme_lists():
    role = by_kind("ClusterRole")["kube-portal"]
    granted = {(group, resource, verb) for rule in role["rules"]
               for group in rule["apiGroups"] for resource in rule["resources"]
               for verb in rule["verbs"]}
    listed = _readme_rights()
    assert listed, "the README's table of rights was not found"
    assert granted == listed
    binding = by_kind("ClusterRoleBinding")["kube-portal"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "portal",
                                    "namespace": "portal"}]


def test_the_rights_cover_what_the_gateway_asks_for():
    from cozystack import gateway

    resources = {resource for _group, resource, _verb in _readme_rights()}
    for kind in (gateway.APPS, gateway.MACHINE_DEPLOYMENTS, gateway.TENANT_SECRETS,
                 gateway.APP_DEFINITIONS):
        assert kind[2] in resources
    assert gateway.SECRETS in resources
