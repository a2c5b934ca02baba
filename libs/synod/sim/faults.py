"""The fault model: which faults a run injects, each switchable, all drawn from the run's seed.

`--faults` takes names separated by commas, `all` or `none`. Every fault is
injected only inside the fault window (`FaultPlan.window_s` of virtual time
from the start); after it the system must heal, and liveness is judged from
its end.
"""

from __future__ import annotations

from dataclasses import dataclass

FAULTS: dict[str, str] = {
    "crash": "kill an instance at any point (mid-call, mid-publish, before or after a "
    "commit) and restart it later with nothing but its name",
    "pause": "stop an instance (SIGSTOP) past its session timeout, then let it go on as "
    "a zombie that still publishes what it had in flight",
    "delay": "records become readable after a random delay, so partitions overtake "
    "each other (never within one partition)",
    "dup": "a consumer is handed a record twice (a redelivery the dedup window must catch "
    "or the handler must absorb)",
    "retry": "a producer's acknowledgement is lost and it sends the record again: two "
    "copies on the log",
    "broker": "the broker is unavailable for a while: no produce, fetch or commit",
    "zone": "one zone is cut from the broker (its instances fall out of their groups "
    "and come back as zombies)",
    "llm-slow": "model calls take far longer, some past the step's deadline",
    "llm-error": "model calls fail, by error class: transient, permanent or budget",
    "llm-malformed": "a model's output does not validate (invalid_output)",
    "llm-wrong": "a worker's model returns a wrong answer the jurors should reject",
    "llm-loop": "a step's model repeats one wrong answer byte for byte at every attempt "
    "until the supervisor reassigns it with other parameters",
    "liar": "one juror lies (Byzantine): it votes against what it sees",
    "skew": "instances' clocks are off by up to a few seconds",
}


class FaultError(ValueError):
    pass


def parse_faults(text: str) -> frozenset[str]:
    """`all`, `none`, or names joined by commas; a clear error names the unknown ones."""
    text = text.strip()
    if text in ("", "none"):
        return frozenset()
    if text == "all":
        return frozenset(FAULTS)
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = sorted(names - FAULTS.keys())
    if unknown:
        raise FaultError(
            f"unknown fault(s) {', '.join(unknown)}; choose from all, none, "
            + ", ".join(sorted(FAULTS))
        )
    return frozenset(names)


@dataclass(frozen=True)
class FaultPlan:
    faults: frozenset[str] = frozenset()
    window_s: float = 240.0  # faults happen in [0, window_s) of virtual time
    crash_rate_per_s: float = 1 / 40  # across all instances
    crash_mid_publish_p: float = 0.02  # per record sent: the sender dies right before it
    pause_rate_per_s: float = 1 / 120
    delay_max_s: float = 2.0
    dup_p: float = 0.05
    retry_p: float = 0.05
    llm_slow_p: float = 0.15
    llm_error_p: float = 0.1
    llm_malformed_p: float = 0.05
    llm_wrong_p: float = 0.1
    llm_loop_p: float = 0.1  # per step, decided when the step is first asked for
    skew_max_ms: int = 3_000

    def on(self, name: str) -> bool:
        return name in self.faults
