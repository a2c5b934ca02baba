"""The supervisor service's mapping from wire messages to core events (no broker)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from synod.core import supervisor as core
from synod.roles.supervisor.service import SupervisorService, signature
from synod.runtimes import NoRuntime
from synod.wire import (
    Candidate,
    Decision,
    Envelope,
    Heartbeat,
    Sender,
    StepCompleted,
    StepFailed,
    Vote,
    VoteRequested,
)


def service() -> SupervisorService:
    ctx: Any = SimpleNamespace(instance="supervisor-0")
    return SupervisorService(ctx, core.SupervisorConfig(), NoRuntime())


def env(body: Any, role: str = "coder", instance: str = "coder-0", **kw: Any) -> Envelope[Any]:
    return Envelope.new(body, sender=Sender(role=role, instance=instance), **kw)  # type: ignore[arg-type]


def test_a_rejected_answer_names_the_instances_whose_output_made_it() -> None:
    s = service()
    now = time.time()
    s.events(env(StepCompleted(step_id="a", output="x"), task_id="t", attempt=0), now)
    s.events(env(StepCompleted(step_id="b", output="y"), "coder", "coder-1", task_id="t"), now)
    vote = VoteRequested(
        proposal_id="t/answer",
        candidates=[Candidate(candidate_id="answer", content="x y", author="a,b")],
        electorate=["reviewer-0"],
    )
    s.events(env(vote, "planner", "planner-0", task_id="t"), now)
    decision = Decision(
        decision_id="d", proposal_id="t/answer", ballot=1, outcome="rejected", quorum=2
    )
    [event] = s.events(env(decision, "consensus", "consensus-0", task_id="t"), now)
    assert event == core.DecisionSeen("t", "t/answer", "rejected", ("coder-0", "coder-1"))


def test_outputs_become_signatures_and_provider_errors_do_not_repeat() -> None:
    s = service()
    now = time.time()
    [done] = s.events(env(StepCompleted(step_id="a", output="x"), task_id="t", attempt=2), now)
    assert done == core.StepCompletedSeen("t", "a", 2, "coder-0", signature("x"))
    limited = StepFailed(step_id="a", error_class="transient", reason="rate_limited")
    hung = StepFailed(step_id="a", error_class="transient", reason="deadline")
    [weather] = s.events(env(limited, task_id="t"), now)
    [stuck] = s.events(env(hung, task_id="t"), now)
    assert isinstance(weather, core.StepFailedSeen)
    assert not weather.repeatable
    assert isinstance(stuck, core.StepFailedSeen)
    assert stuck.repeatable


def test_votes_abstentions_own_and_stale_heartbeats() -> None:
    s = service()
    now = time.time()
    reject = Vote(proposal_id="t/answer", voter="reviewer-1", kind="reject")
    abstain = Vote(proposal_id="t/answer", voter="reviewer-2", kind="abstain")
    assert s.events(env(reject, "reviewer", "reviewer-1", task_id="t"), now) == [
        core.VoteSeen("t/answer", "reviewer-1", "rejected")
    ]
    assert s.events(env(abstain, "reviewer", "reviewer-2", task_id="t"), now) == []
    own = Heartbeat(instance="supervisor-0", role="supervisor", seq=1)
    assert s.events(env(own, "supervisor", "supervisor-0"), now) == []
    beat = Heartbeat(instance="coder-0", role="coder", seq=3)
    assert s.events(env(beat), now) == [core.HeartbeatSeen("coder-0", "coder", 3, "running")]
    assert s.events(env(beat), now + 60) == []  # a backlog says nothing about now


def test_the_charts_environment_names_are_read(monkeypatch: Any) -> None:
    from synod.roles.supervisor.service import SupervisorSettings

    monkeypatch.setenv("SYNOD_RUNTIME", "kubernetes")
    monkeypatch.setenv("SYNOD_NAMESPACE", "agents")
    monkeypatch.setenv("SYNOD_RELEASE_FULLNAME", "rel-synod")
    settings = SupervisorSettings()
    assert (settings.runtime, settings.namespace, settings.release_fullname) == (
        "kubernetes",
        "agents",
        "rel-synod",
    )
    monkeypatch.setenv("SYNOD_SUPERVISOR_RUNTIME", "local")
    assert SupervisorSettings().runtime == "local"  # the supervisor's own name wins


def test_heartbeats_tell_the_host_to_restart() -> None:
    s = service()
    beat = Heartbeat(instance="coder-0", role="coder", seq=1, host="rel-synod-coder-abc")
    s.events(env(beat), time.time())
    assert s.intake.hosts == {"coder-0": "rel-synod-coder-abc"}


async def test_a_restart_names_the_pid_the_last_heartbeat_came_from() -> None:
    asked: list[tuple[str, str, str, int]] = []

    class Recording(NoRuntime):
        async def restart(self, instance: str, role: str, host: str = "", pid: int = 0) -> str:
            asked.append((instance, role, host, pid))
            return "recorded"

    s = service()
    s.runtime = Recording()
    beat = Heartbeat(instance="coder-0", role="coder", seq=1, host="h", pid=4242)
    s.events(env(beat), time.time())
    await s.restart(core.Restart("coder-0", "coder", "dead", 9.0))
    assert asked == [("coder-0", "coder", "h", 4242)]


async def test_every_tick_passes_the_core_its_consumers_last_answer(monkeypatch: Any) -> None:
    from synod.roles.supervisor.service import SupervisorSettings

    monkeypatch.setenv("SYNOD_SUPERVISOR_VIEW_STALE_S", "1.5")
    monkeypatch.setenv("SYNOD_SUPERVISOR_START_TIMEOUT_S", "90")
    config = SupervisorSettings().config()
    assert (config.view_stale_s, config.start_timeout_s) == (1.5, 90.0)
    answers: list[float | None] = [100.0, None]
    ctx: Any = SimpleNamespace(instance="supervisor-0")
    s = SupervisorService(ctx, config, NoRuntime(), clock=lambda: 100.5)
    s.consumer = SimpleNamespace(answered_at=lambda: answers.pop(0))  # type: ignore[assignment]
    await s.tick()
    assert (s.core.view_at, s.core.view_stale) == (100.0, False)
    await s.tick()  # no partition held
    assert (s.core.view_at, s.core.view_stale) == (None, True)
    if s.reporting is not None:
        await s.reporting
