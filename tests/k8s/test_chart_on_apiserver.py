"""helm install, upgrade and uninstall the chart on a real API server, and check
what landed with the official Kubernetes client, RBAC included."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

from .conftest import ROOT, ApiServer

CHART = ROOT / "charts" / "synod"
HELM = ROOT / ".tools" / "helm"
NAMESPACE = "synod-e2e"
RELEASE = "synod"
ROLES = ["gateway", "planner", "researcher", "coder", "consensus", "supervisor"]
# No controllers run here, so hook Jobs and the helm test pod would wait for
# ever: --no-hooks, and nothing waits for readiness.
INSTALL = [
    "--namespace",
    NAMESPACE,
    "--no-hooks",
    "--set",
    "kafka.bootstrapServers=kafka.example:9092",
    "--set",
    "supervisor.enabled=true",
]


def helm(api: ApiServer, *args: str) -> str:
    proc = subprocess.run(
        [str(HELM), "--kubeconfig", str(api.kubeconfig), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def api_client(apiserver: ApiServer) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(apiserver.kubeconfig), client_configuration=configuration
    )
    with client.ApiClient(configuration) as api:
        client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata={"name": NAMESPACE}))
        yield api


def can(api: client.ApiClient, role: str, verb: str, resource: str, sub: str = "") -> bool:
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{NAMESPACE}:{RELEASE}-{role}",
            groups=["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"],
            resource_attributes=client.V1ResourceAttributes(
                namespace=NAMESPACE,
                verb=verb,
                group="apps" if resource.startswith("deployments") else "",
                resource=resource,
                subresource=sub or None,
            ),
        )
    )
    result: Any = client.AuthorizationV1Api(api).create_subject_access_review(review)
    return bool(result.status.allowed)


def test_install_upgrade_uninstall(apiserver: ApiServer, api_client: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    helm(apiserver, "install", RELEASE, str(CHART), *INSTALL)

    deployments = {d.metadata.name: d for d in apps.list_namespaced_deployment(NAMESPACE).items}
    assert set(deployments) == {f"{RELEASE}-{r}" for r in ROLES}
    [reviewers] = apps.list_namespaced_stateful_set(NAMESPACE).items
    assert reviewers.spec.replicas == 3
    config_map = core.read_namespaced_config_map(RELEASE, NAMESPACE)
    assert config_map.data["SYNOD_BOOTSTRAP"] == "kafka.example:9092"
    assert {s.metadata.name for s in core.list_namespaced_service(NAMESPACE).items} >= {
        f"{RELEASE}-gateway"
    }
    accounts = {a.metadata.name for a in core.list_namespaced_service_account(NAMESPACE).items}
    assert {f"{RELEASE}-{r}" for r in [*ROLES, "reviewer"]} <= accounts
    pdbs = client.PolicyV1Api(api_client).list_namespaced_pod_disruption_budget(NAMESPACE).items
    assert len(pdbs) >= 5
    policies = client.NetworkingV1Api(api_client).list_namespaced_network_policy(NAMESPACE).items
    assert policies

    # RBAC, as the API server decides it: only the supervisor may touch pods.
    assert can(api_client, "supervisor", "delete", "pods")
    assert can(api_client, "supervisor", "create", "pods", "eviction")
    assert can(api_client, "supervisor", "patch", "deployments", "scale")
    assert not can(api_client, "supervisor", "create", "pods")
    assert not can(api_client, "researcher", "delete", "pods")
    assert not can(api_client, "researcher", "patch", "deployments", "scale")

    helm(
        apiserver,
        "upgrade",
        RELEASE,
        str(CHART),
        *INSTALL,
        "--set",
        "roles.coder.replicas=5",
        "--set",
        "config.logLevel=DEBUG",
    )
    coder = apps.read_namespaced_deployment(f"{RELEASE}-coder", NAMESPACE)
    assert coder.spec.replicas == 5
    assert core.read_namespaced_config_map(RELEASE, NAMESPACE).data["SYNOD_LOG_LEVEL"] == "DEBUG"
    history = json.loads(
        helm(apiserver, "history", RELEASE, "--namespace", NAMESPACE, "-o", "json")
    )
    assert [h["revision"] for h in history] == [1, 2]
    assert history[-1]["status"] == "deployed"

    helm(apiserver, "uninstall", RELEASE, "--namespace", NAMESPACE)
    assert not apps.list_namespaced_deployment(NAMESPACE).items
    assert not apps.list_namespaced_stateful_set(NAMESPACE).items
