"""Runtimes: how the supervisor restarts an instance or scales a role.

- `LocalProcessRuntime` for `synod up`: every child's pid is in the run
  directory's processes.json. A restart SIGKILLs the child's process group
  (after checking, in /proc, that the pid still is that instance, so a reused
  pid is never killed) and drops a request file that `synod up`'s watch loop
  answers by starting the instance again. Files, not a control port: nothing
  listens, nothing to secure, and `synod up` already polls its children.
- `KubernetesRuntime` with the official `kubernetes` client and in-cluster
  config: the pod is the one named by the `host` of the instance's
  heartbeats (a pod's hostname is its name), else the instance id. Restart
  is a policy/v1 Eviction (respects PodDisruptionBudgets), or a delete when
  asked to force; scaling patches `<release>-<role>`'s scale subresource.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from synod.errors import ConfigError

RESTART_REQUESTS = "restart-requests"


class Runtime(Protocol):
    name: str

    async def restart(self, instance: str, role: str, host: str = "", pid: int = 0) -> str:
        """Restart `instance` (`host`, `pid`: where and as which process its last
        heartbeat said it runs, if known); returns what was done, for logs."""
        ...

    async def scale(self, role: str, replicas: int) -> None: ...


class RuntimeError_(Exception):
    """A runtime could not carry out an action (logged and counted by the supervisor)."""


# ---------------------------------------------------------------- local processes


def request_path(run_dir: Path, instance: str) -> Path:
    return run_dir / RESTART_REQUESTS / instance


def _is_instance(pid: int, instance: str) -> bool:
    """True if `pid` runs a Synod service with this instance id (guards pid reuse)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"SYNOD_INSTANCE={instance}".encode() in environ


@dataclass
class LocalProcessRuntime:
    run_dir: Path
    name: str = "local"
    # A child that has not sent a heartbeat yet is still starting (synod up started
    # it again after an exit, and the supervisor has only heard its predecessor):
    # killing it would only start the wait again. Known by its pid: processes.json
    # names the child's, the supervisor passes the one its last heartbeat came from.
    # Left to start up to `start_timeout_s` (then its start hangs); when the
    # heartbeats say no pid, a child younger than `min_age_s` is taken as starting.
    start_timeout_s: float = 120.0
    min_age_s: float = 20.0

    def _child(self, instance: str) -> dict[str, Any]:
        path = self.run_dir / "processes.json"
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            raise RuntimeError_(f"no synod up state at {path}") from None
        for child in state.get("children", []):
            if child.get("instance") == instance:
                found: dict[str, Any] = child
                return found
        raise RuntimeError_(f"{instance} is not a child of the synod up in {self.run_dir}")

    def _starting(self, pid: int, heard_pid: int, age: float) -> bool:
        if heard_pid > 0:
            return pid != heard_pid and age < self.start_timeout_s
        return age < self.min_age_s

    async def restart(self, instance: str, role: str, host: str = "", pid: int = 0) -> str:
        child = self._child(instance)
        heard_pid, pid = pid, int(child["pid"]) if child.get("pid") else 0
        age = time.time() - float(child.get("started_at") or 0.0)
        if pid and self._starting(pid, heard_pid, age) and _is_instance(pid, instance):
            beat = "has not beaten yet" if heard_pid else "heartbeats name no pid"
            return f"pid {pid} started {age:.0f}s ago and {beat}; left to finish starting"
        request = request_path(self.run_dir, instance)
        request.parent.mkdir(parents=True, exist_ok=True)
        request.write_text(role)
        if pid and _is_instance(pid, instance):
            try:
                os.killpg(pid, signal.SIGKILL)  # its own session: the group is the child
            except ProcessLookupError:
                return f"pid {pid} already gone; respawn requested"
            return f"SIGKILLed pid {pid}; respawn requested"
        return "no live process; respawn requested"

    async def scale(self, role: str, replicas: int) -> None:
        raise RuntimeError_(
            "synod up runs a fixed set of processes; restart it with --replicas "
            f"{role}={replicas} to scale"
        )


# ---------------------------------------------------------------- Kubernetes


@dataclass
class KubernetesRuntime:
    """Pods and Deployments of one namespace, through the official client."""

    namespace: str
    core: Any  # kubernetes.client.CoreV1Api
    apps: Any  # kubernetes.client.AppsV1Api
    deployment_prefix: str = "synod-"
    evict: bool = True
    name: str = "kubernetes"

    @classmethod
    def in_cluster(cls, namespace: str | None = None, **kwargs: Any) -> KubernetesRuntime:
        from kubernetes import client, config

        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException as exc:
            raise ConfigError(f"not inside a Kubernetes pod: {exc}") from None
        if namespace is None:
            ns_file = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            namespace = ns_file.read_text().strip() if ns_file.exists() else "default"
        return cls(namespace, client.CoreV1Api(), client.AppsV1Api(), **kwargs)

    @classmethod
    def with_client(cls, api_client: Any, namespace: str, **kwargs: Any) -> KubernetesRuntime:
        from kubernetes import client

        return cls(namespace, client.CoreV1Api(api_client), client.AppsV1Api(api_client), **kwargs)

    def deployment(self, role: str) -> str:
        return f"{self.deployment_prefix}{role}"

    async def restart(self, instance: str, role: str, host: str = "", pid: int = 0) -> str:
        # A pod's hostname is its name, and every heartbeat carries it; the
        # instance id is the pod name only where the chart makes it so.
        return await asyncio.to_thread(self._restart, host or instance)

    def _restart(self, instance: str) -> str:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            if self.evict:
                body = client.V1Eviction(
                    api_version="policy/v1",  # the API server rejects an Eviction without them
                    kind="Eviction",
                    metadata=client.V1ObjectMeta(name=instance, namespace=self.namespace),
                    delete_options=client.V1DeleteOptions(grace_period_seconds=0),
                )
                # This client version sends no Content-Type unless told, and the
                # API server answers 415 to a body without one.
                self.core.create_namespaced_pod_eviction(
                    instance, self.namespace, body, _headers={"Content-Type": "application/json"}
                )
                return f"evicted pod {self.namespace}/{instance}"
            self.core.delete_namespaced_pod(instance, self.namespace, grace_period_seconds=0)
            return f"deleted pod {self.namespace}/{instance}"
        except ApiException as exc:
            if exc.status == 404:
                return f"pod {self.namespace}/{instance} is already gone"
            raise RuntimeError_(f"{instance}: {exc.status} {exc.reason}") from None

    async def scale(self, role: str, replicas: int) -> None:
        if replicas < 0:
            raise ValueError(f"replicas must be >= 0, not {replicas}")
        await asyncio.to_thread(self._scale, role, replicas)

    def _scale(self, role: str, replicas: int) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.apps.patch_namespaced_deployment_scale(
                self.deployment(role), self.namespace, {"spec": {"replicas": replicas}}
            )
        except ApiException as exc:
            raise RuntimeError_(f"scale {role}: {exc.status} {exc.reason}") from None


@dataclass
class NoRuntime:
    """Detect and report only (no restart rights)."""

    name: str = "none"

    async def restart(self, instance: str, role: str, host: str = "", pid: int = 0) -> str:
        return "no runtime configured; not restarted"

    async def scale(self, role: str, replicas: int) -> None:
        raise RuntimeError_("no runtime configured")
