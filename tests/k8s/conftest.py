"""A real Kubernetes API server (kube-apiserver + etcd, built by hack/build-k8s.sh)
on 127.0.0.1, for `make k8s-e2e`. No scheduler or controllers: objects are
stored, validated, admitted and authorized for real, but no pod ever runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import urllib3
import yaml
from tests.polling import PollTimeout, wait_until

from synod.dev.localkafka import free_port

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = os.environ.get("K8S_VERSION", "v1.34.4")
BIN = ROOT / ".tools" / "k8s" / K8S_VERSION
ADMIN_TOKEN = "synod-k8s-e2e-admin"  # a throwaway token of a throwaway cluster


@dataclass
class ApiServer:
    url: str
    kubeconfig: Path
    version: str


def _spawn(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    http = urllib3.PoolManager(cert_reqs="CERT_NONE")
    urllib3.disable_warnings()

    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"kube-apiserver exited:\n{log.read_text()[-3000:]}", pytrace=False)
        try:
            response = http.request(
                "GET",
                f"{url}/readyz",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=2,
            )
        except urllib3.exceptions.HTTPError:
            return False
        return response.status == 200

    try:
        wait_until(ready, what=f"{url}/readyz", timeout_s=timeout_s, interval_s=0.5)
    except PollTimeout as exc:
        pytest.fail(f"kube-apiserver not ready: {exc}:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    if not (BIN / "kube-apiserver").exists() or not (BIN / "etcd").exists():
        pytest.fail(f"no kube-apiserver/etcd in {BIN}: run `make k8s-e2e`", pytrace=False)
    work = tmp_path_factory.mktemp("k8s")
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    etcd = _spawn(
        [
            str(BIN / "etcd"),
            f"--data-dir={work / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
        ],
        work / "etcd.log",
    )
    key = work / "sa.key"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    (work / "tokens.csv").write_text(f"{ADMIN_TOKEN},synod-admin,1000,system:masters\n")
    log = work / "kube-apiserver.log"
    api = _spawn(
        [
            str(BIN / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--cert-dir={work / 'certs'}",  # self-signed serving certificate
            f"--token-auth-file={work / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-key-file={key}",
            f"--service-account-signing-key-file={key}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.96.0.0/24",
            # Nothing runs pods here: no ServiceAccount token controller either.
            "--disable-admission-plugins=ServiceAccount",
        ],
        log,
    )
    url = f"https://127.0.0.1:{api_port}"
    try:
        _wait_ready(url, api, log, timeout_s=120)
        kubeconfig = work / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "e2e",
                            "cluster": {"server": url, "insecure-skip-tls-verify": True},
                        }
                    ],
                    "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
                    "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin"}}],
                    "current-context": "e2e",
                }
            )
        )
        yield ApiServer(url=url, kubeconfig=kubeconfig, version=K8S_VERSION)
    finally:
        _stop(api)
        _stop(etcd)
        shutil.rmtree(work / "etcd", ignore_errors=True)
