"""The supervisor core's vocabulary: its config, the events it reads, the actions it takes.

`synod.core.supervisor.engine` (the `Supervisor`) explains what each is for.
"""

from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------- config


@dataclass(frozen=True)
class SupervisorConfig:
    phi_threshold: float = 8.0
    acceptable_pause_s: float = 3.0
    min_std_s: float = 0.5
    bootstrap_timeout_s: float = 10.0
    restart_cooldown_s: float = 30.0
    # A restarted instance is starting until it sends its first heartbeat (the
    # engine's "Still starting"); it is not restarted again before that, unless
    # this long has passed since the restart (the start itself hangs).
    start_timeout_s: float = 120.0
    lease_grace_s: float = 10.0
    loop_repeats: int = 2
    attempt_budget: int = 4
    max_reassignments: int = 2
    # Parameters a reassigned step cycles through; "" means the backend's default.
    models: tuple[str, ...] = ("",)
    temperatures: tuple[float, ...] = (0.7, 1.0, 0.3)
    prompt_variants: tuple[str, ...] = ("rephrase", "step-by-step", "minimal")
    strikes_to_quarantine: int = 3
    strike_window: int = 5
    quarantine_s: float = 300.0
    max_quarantine_s: float = 3600.0
    # Never leave fewer live, unquarantined reviewers than this: an electorate
    # that cannot be filled is worse than one imperfect juror.
    min_reviewers: int = 3
    max_tracked_steps: int = 100_000
    # An instance silent this long is gone (scaled away), not dead: stop restarting it.
    forget_after_s: float = 600.0
    # A step still stuck, looping or failing once its reassignments are used up
    # has outrun what the supervisor can do: ask the planner to put its task to
    # a person (EscalationRequested), once per task.
    escalate: bool = True
    # The supervisor's own silence (engine.py, "Its own silence"): a gap between
    # its ticks over `wake_gap_factor` x `tick_interval_s` means it was not running
    # (SIGSTOP, a long GC pause, a VM migration); then nobody is judged for
    # `wake_hold_s` while it reads what queued up, and the gap is not counted as
    # anyone's silence.
    tick_interval_s: float = 1.0
    wake_gap_factor: float = 3.0
    wake_hold_s: float = 5.0
    # The supervisor's own view of the log (engine.py, "Its own view"): when its
    # consumer has had no answer from the broker for this long (`ViewSeen`), the
    # silence it sees is its own, and nobody is judged until the view is back.
    # Must stay under the time a death takes to detect (6.8 s with the defaults)
    # less one heartbeat interval.
    view_stale_s: float = 2.0

    def __post_init__(self) -> None:
        if self.loop_repeats < 2:
            raise ValueError("loop_repeats must be >= 2: one output is not a repetition")
        if self.strikes_to_quarantine < 1 or self.strike_window < self.strikes_to_quarantine:
            raise ValueError("need 1 <= strikes_to_quarantine <= strike_window")
        if not self.models or not self.temperatures or not self.prompt_variants:
            raise ValueError("models, temperatures and prompt_variants need one entry each")
        if self.quarantine_s <= 0 or self.max_quarantine_s < self.quarantine_s:
            raise ValueError("need 0 < quarantine_s <= max_quarantine_s")
        if self.tick_interval_s <= 0 or self.wake_gap_factor <= 1 or self.wake_hold_s < 0:
            raise ValueError("need tick_interval_s > 0, wake_gap_factor > 1, wake_hold_s >= 0")
        if self.view_stale_s <= 0 or self.start_timeout_s < 0:
            raise ValueError("need view_stale_s > 0 and start_timeout_s >= 0")


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class HeartbeatSeen:
    instance: str
    role: str
    seq: int
    state: str = "running"


@dataclass(frozen=True)
class StepRequestedSeen:
    task_id: str
    step_id: str
    attempt: int
    deadline_s: float
    requested_at: float  # when the request was made (its envelope's time)
    model: str = ""
    temperature: float | None = None
    prompt_variant: str = ""


@dataclass(frozen=True)
class StepCompletedSeen:
    task_id: str
    step_id: str
    attempt: int
    instance: str
    signature: str  # a digest of the output


@dataclass(frozen=True)
class StepFailedSeen:
    task_id: str
    step_id: str
    attempt: int
    instance: str
    signature: str  # error class and reason, not the text (it names the attempt)
    # False for failures that say nothing about the agent (a 429, an outage):
    # the same provider error twice is weather, not a loop.
    repeatable: bool = True


@dataclass(frozen=True)
class VoteSeen:
    proposal_id: str
    voter: str
    position: str  # a candidate id, or "rejected"; abstentions are not passed in


@dataclass(frozen=True)
class DecisionSeen:
    task_id: str
    proposal_id: str
    outcome: str  # a candidate id, "rejected" or "no_quorum"
    producers: tuple[str, ...] = ()  # instances whose output made the candidate judged


@dataclass(frozen=True)
class StepParkedSeen:
    """A worker parked the attempt in a retry topic: not stuck before `until`
    (its due time plus the step's deadline)."""

    task_id: str
    step_id: str
    attempt: int
    until: float


@dataclass(frozen=True)
class TaskEnded:
    task_id: str


@dataclass(frozen=True)
class ViewSeen:
    """The adapter's own view of the log, passed in every tick: `fetched_at` is the
    time (epoch s) its consumer last had an answer from the broker for every partition
    it reads, empty answers included; None while it holds no partition, or one has not
    been answered since it was assigned. A supervisor that never sends it is judged
    as before (its view taken as always current)."""

    fetched_at: float | None


Event = (
    HeartbeatSeen
    | StepRequestedSeen
    | StepCompletedSeen
    | StepFailedSeen
    | StepParkedSeen
    | VoteSeen
    | DecisionSeen
    | TaskEnded
    | ViewSeen
)

# ---------------------------------------------------------------- actions


@dataclass(frozen=True)
class Restart:
    instance: str
    role: str
    reason: str  # "dead"
    phi: float


@dataclass(frozen=True)
class Reassign:
    task_id: str
    step_id: str
    after_attempt: int  # the newest attempt judged bad; the new one is after it
    model: str
    temperature: float | None
    prompt_variant: str
    reason: str  # "stuck" | "loop" | "attempt_budget"


@dataclass(frozen=True)
class Escalate:
    """Ask for a person: the step needs another remedy, and none is left."""

    task_id: str
    step_id: str
    after_attempt: int  # the attempt judged bad when no reassignment was left
    reason: str  # "stuck" | "loop" | "attempt_budget", as for Reassign
    reassignments: int  # how many were made before

    def explain(self) -> str:
        what = {
            "stuck": "is still stuck (no outcome past its deadline)",
            "loop": "keeps repeating the same outcome",
            "attempt_budget": "keeps failing and has used up its attempts",
        }.get(self.reason, f"needs another remedy ({self.reason})")
        return (
            f"step {self.step_id} {what} at attempt {self.after_attempt}, after "
            f"{self.reassignments} reassignments with other parameters: the supervisor "
            "has no remedy left"
        )


@dataclass(frozen=True)
class Quarantine:
    instance: str
    role: str
    until: float
    reason: str  # "rejected_candidates" | "wrong_votes"
    strikes: int


@dataclass(frozen=True)
class Release:
    instance: str
    role: str
    reason: str  # "served"


Action = Restart | Reassign | Escalate | Quarantine | Release
