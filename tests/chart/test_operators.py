"""The optional objects: KEDA scaling, Strimzi topics and users, the supervisor."""

from __future__ import annotations

from typing import Any

import pytest

from synod.transport.authorship import RIGHTS, acls_for
from synod.transport.topics import CATALOGUE

from .conftest import CHART, render
from .test_chart import OPERATORS

PRODUCTION = CHART / "ci" / "production-values.yaml"


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def env_of(workload: dict[str, Any]) -> dict[str, Any]:
    [container] = workload["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_optional_kinds_need_their_operator_in_the_cluster() -> None:
    kinds = {o["kind"] for o in render(PRODUCTION)}  # no --api-versions: nothing to serve them
    assert not kinds & {"ScaledObject", "KafkaTopic", "KafkaUser", "ServiceMonitor"}


def test_keda_owns_the_replicas_of_the_roles_it_scales() -> None:
    objects = render(PRODUCTION, *OPERATORS)
    scaled = by_kind(objects, "ScaledObject")
    deployments = by_kind(objects, "Deployment")
    assert {n.rsplit("-", 1)[1] for n in scaled} == {"planner", "researcher", "coder"}
    assert not by_kind(objects, "HorizontalPodAutoscaler")
    for name, so in scaled.items():
        target = so["spec"]["scaleTargetRef"]["name"]
        assert "replicas" not in deployments[target]["spec"], target
        for trigger in so["spec"]["triggers"]:
            assert all(isinstance(v, str) for v in trigger["metadata"].values()), name
            assert trigger["metadata"]["consumerGroup"].startswith("prod.synod.")
    assert deployments["synod-ci-gateway"]["spec"]["replicas"] == 3  # not scaled: as set


@pytest.mark.parametrize(
    ("mechanism", "keda_name"),
    [("SCRAM-SHA-512", "scram_sha512"), ("SCRAM-SHA-256", "scram_sha256")],
)
def test_keda_gets_the_sasl_mode_in_its_own_spelling(mechanism: str, keda_name: str) -> None:
    # KEDA's kafka scaler accepts only these names (pkg/scalers/kafka_scaler.go);
    # "scram_sha_512" fails the scaler at run time, which no schema catches.
    objects = render(PRODUCTION, *OPERATORS, "--set", f"kafka.sasl.mechanism={mechanism}")
    for so in by_kind(objects, "ScaledObject").values():
        assert so["spec"]["triggers"][0]["metadata"]["sasl"] == keda_name


def test_strimzi_topics_are_the_code_catalogue_and_replace_the_job() -> None:
    objects = render(PRODUCTION, *OPERATORS)
    topics = {t["spec"]["topicName"]: t["spec"] for t in by_kind(objects, "KafkaTopic").values()}
    assert set(topics) == {f"prod.{spec.name}" for spec in CATALOGUE}
    for spec in CATALOGUE:
        rendered = topics[f"prod.{spec.name}"]
        assert rendered["partitions"] == spec.partitions
        # What `synod topics create` sets at 3 replicas: min.insync.replicas 2 included.
        assert rendered["config"] == spec.config(replication_factor=3)
        assert rendered["replicas"] == 3
    assert not by_kind(objects, "Job")


def test_each_role_logs_in_as_its_own_kafka_user_with_least_privilege() -> None:
    objects = render(PRODUCTION, *OPERATORS)
    users = by_kind(objects, "KafkaUser")
    workloads = {**by_kind(objects, "Deployment"), **by_kind(objects, "StatefulSet")}
    # And one for the `synod` CLI, which reads and submits only.
    assert set(users) == set(workloads) | {"synod-ci-cli"}
    for name, workload in workloads.items():
        env = env_of(workload)
        assert env["SYNOD_KAFKA_SASL_USERNAME"] == name
        assert env["SYNOD_KAFKA_SASL_PASSWORD"]["secretKeyRef"]["name"] == name
        assert env["SYNOD_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"

    def grants(user: str) -> set[tuple[str, str]]:
        acls = users[f"synod-ci-{user}"]["spec"]["authorization"]["acls"]
        return {(a["resource"]["name"], op) for a in acls for op in a["operations"]}

    assert ("prod.synod.tasks", "Write") in grants("gateway")
    assert ("prod.synod.steps.coder", "Read") in grants("coder")
    assert ("prod.synod.steps.researcher", "Read") not in grants("coder")
    assert not any(op == "Write" and t == "prod.synod.results" for t, op in grants("coder"))
    assert ("prod.synod.votes", "Write") in grants("reviewer")
    # A reviewer logs AnswerVerified on the task's log; signatures, not ACLs,
    # keep it from authoring anything else there (synod.transport.authorship).
    assert ("prod.synod.task-events", "Write") in grants("reviewer")
    for worker in ("researcher", "coder"):
        for topic in ("votes", "results", "decisions", "tasks"):
            assert (f"prod.synod.{topic}", "Write") not in grants(worker)
    # The planner's transactional outbox (SYNOD_PLANNER_OUTBOX=transaction).
    assert not any(op == "Write" and t != "prod.synod.tasks" for t, op in grants("cli"))
    assert ("prod.synod.", "Read") in grants("cli")
    transactions = {
        "resource": {
            "type": "transactionalId",
            "name": "prod.synod.planner.",
            "patternType": "prefix",
        },
        "operations": ["Write", "Describe"],
    }
    assert transactions in users["synod-ci-planner"]["spec"]["authorization"]["acls"]
    # The chart's users are the rights table, not a second copy of it.
    for role in RIGHTS:
        expected = {(f"prod.{acl.name}", op) for acl in acls_for(role) for op in acl.operations}
        assert grants(role) == expected, role
    # The stateful roles write and restore their snapshots; the workers never touch them.
    for role in ("consensus", "planner"):
        assert {("prod.synod.snapshots", "Write"), ("prod.synod.snapshots", "Read")} <= grants(role)
    for role in ("coder", "researcher", "reviewer", "supervisor"):
        assert not any(t == "prod.synod.snapshots" for t, _ in grants(role)), role


def test_only_the_supervisor_gets_a_kubernetes_api_token() -> None:
    objects = render(PRODUCTION, *OPERATORS)
    workloads = {**by_kind(objects, "Deployment"), **by_kind(objects, "StatefulSet")}
    supervisor = workloads.pop("synod-ci-supervisor")
    pod = supervisor["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == "synod-ci-supervisor"
    assert env_of(supervisor)["SYNOD_RUNTIME"] == "kubernetes"
    for name, workload in workloads.items():
        assert workload["spec"]["template"]["spec"]["automountServiceAccountToken"] is False, name


def test_keda_with_sasl_needs_a_trigger_authentication() -> None:
    from .conftest import helm

    args = ["template", "x", str(CHART), "-f", str(PRODUCTION), "--kube-version", "1.31.0"]
    proc = helm(*args, *OPERATORS, "--set", "keda.authenticationRef=", check=False)
    assert proc.returncode != 0
    assert "keda.authenticationRef" in proc.stderr
    scaled = by_kind(render(PRODUCTION, *OPERATORS), "ScaledObject")
    assert all(
        so["spec"]["triggers"][0]["authenticationRef"]["name"] == "synod-kafka-keda"
        for so in scaled.values()
    )


def test_servicemonitor_and_kafkauser_checks_reject_bad_objects() -> None:
    from jsonschema import ValidationError

    from .crds import strimzi_problems, validate_crd_object

    rendered = render(PRODUCTION, *OPERATORS)
    [monitor] = by_kind(rendered, "ServiceMonitor").values()
    validate_crd_object(monitor)
    bad_monitor = {**monitor, "spec": {**monitor["spec"], "endpoints": "metrics"}}
    with pytest.raises(ValidationError):
        validate_crd_object(bad_monitor)
    user = next(iter(by_kind(rendered, "KafkaUser").values()))
    assert strimzi_problems([user]) == []
    bad_user = {**user, "spec": {**user["spec"], "authentication": {"type": "scram-sha-1"}}}
    [problem] = strimzi_problems([bad_user])
    assert "authentication" in problem
