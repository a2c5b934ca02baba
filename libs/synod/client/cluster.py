"""Which Kafka a client talks to, and why: an argument, SYNOD_BOOTSTRAP, or a running `synod up`.

A person who ran `synod up` in one terminal and `synod submit` in another
should not have to copy the broker's port: with no bootstrap given and
SYNOD_BOOTSTRAP unset, the broker recorded in `synod up`'s processes.json is
used, when that `synod up` is alive, and the client says so on stderr.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from synod.dev.localrun import read_state
from synod.errors import BrokerError
from synod.settings import KafkaSettings

Source = Literal["argument", "SYNOD_BOOTSTRAP", "synod up", "default"]


@dataclass(frozen=True)
class Cluster:
    bootstrap: str
    prefix: str
    source: Source

    def unreachable(self, detail: str = "") -> BrokerError:
        """The one line to show when this broker does not answer: what to set."""
        why = {
            "argument": "given with --bootstrap",
            "SYNOD_BOOTSTRAP": "from SYNOD_BOOTSTRAP",
            "synod up": "of the running `synod up`",
            "default": "the default; no `synod up` is running here and SYNOD_BOOTSTRAP is unset",
        }[self.source]
        hint = (
            "start one with `synod up`, or set SYNOD_BOOTSTRAP (or --bootstrap) to a broker"
            if self.source == "default"
            else "check the broker is up, or set SYNOD_BOOTSTRAP (or --bootstrap) to one that is"
        )
        tail = f" ({detail})" if detail else ""
        return BrokerError(f"cannot reach Kafka at {self.bootstrap} ({why}){tail}: {hint}")


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_cluster(
    bootstrap: str | None = None,
    prefix: str | None = None,
    *,
    run_dir: Path | None = None,
    announce: bool = True,
) -> Cluster:
    """The broker and topic prefix to use. `announce`: say on stderr when found from `synod up`."""
    settings = KafkaSettings()
    env_prefix = "topic_prefix" in settings.model_fields_set
    if bootstrap:
        return Cluster(
            bootstrap, prefix if prefix is not None else settings.topic_prefix, "argument"
        )
    if "bootstrap" in settings.model_fields_set:
        topic_prefix = prefix if prefix is not None else settings.topic_prefix
        return Cluster(settings.bootstrap, topic_prefix, "SYNOD_BOOTSTRAP")
    state = read_state(run_dir)
    if state is not None and _alive(state.get("pid")) and state.get("bootstrap"):
        found_prefix = str(state.get("prefix") or "")
        if prefix is not None:
            found_prefix = prefix
        elif env_prefix:
            found_prefix = settings.topic_prefix
        cluster = Cluster(str(state["bootstrap"]), found_prefix, "synod up")
        if announce:
            named = f", topic prefix {found_prefix!r}" if found_prefix else ""
            print(
                f"using the broker of the running `synod up` (pid {state['pid']}): "
                f"{cluster.bootstrap}{named}; set SYNOD_BOOTSTRAP to use another",
                file=sys.stderr,
            )
        return cluster
    return Cluster(
        settings.bootstrap, prefix if prefix is not None else settings.topic_prefix, "default"
    )


def kafka_settings(bootstrap: str | None = None) -> KafkaSettings:
    """KafkaSettings whose bootstrap and prefix are `find_cluster`'s (security settings as set)."""
    cluster = find_cluster(bootstrap)
    return KafkaSettings(bootstrap=cluster.bootstrap, topic_prefix=cluster.prefix)


__all__ = ["Cluster", "find_cluster", "kafka_settings"]
