"""A reviewer that keeps voting against the team is quarantined and left out of electorates.

Four reviewers; tasks ask for three. reviewer-0's model rejects every answer
(the sim's `wrong` verdict), the other three judge right. After two decided
ballots it voted against, the supervisor writes a QuarantineNotice to
synod.supervisor; the planner reads it and the next task's electorate is
reviewer-1..3, and that task completes.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from tests.polling import PollTimeout, wait_until_async

from synod.core.task import TaskConfig
from synod.llm.faults import FaultProfile, Latency
from synod.llm.sim import SimBackend
from synod.roles.consensus.service import install as install_consensus
from synod.roles.planner import quarantine
from synod.roles.planner.service import Planner
from synod.roles.reviewer.service import Reviewer
from synod.roles.supervisor.service import SupervisorService, SupervisorSettings
from synod.roles.supervisor.service import install as install_supervisor
from synod.roles.worker.service import WORK_TOPICS, Worker
from synod.service.host import ServiceContext
from synod.transport.topics import TASK_EVENTS, TASKS, VOTES
from synod.wire import Envelope, PlanStep, TaskCompleted, TaskSubmitted, VoteRequested
from synod.wire.messages import utc_now

from .team import CLIENT, Team

pytestmark = pytest.mark.timeout(240)
FAST = Latency("fixed", 0.01)


async def test_a_reviewer_voting_against_the_team_is_left_out_of_later_electorates(
    kafka: Any,
) -> None:
    team = Team(kafka.bootstrap)
    await team.create_topics()
    honest = SimBackend(profile=FaultProfile("none", {}, FAST))
    liar = SimBackend(profile=FaultProfile("liar", {"wrong": 1.0}, FAST))
    config = TaskConfig(step_deadline_s=30.0, vote_deadline_s=20.0)
    planners: list[Planner] = []

    def planner(ctx: ServiceContext) -> None:
        p = Planner(ctx, honest, config)
        planners.append(p)
        ctx.consume("synod.planner", [TASKS, TASK_EVENTS], p.handle).on_assigned = p.rebuild
        bootstrap, topic = ctx.kafka.bootstrap, f"{ctx.kafka.topic_prefix}synod.supervisor"
        ctx.background.append(lambda: quarantine.follow(bootstrap, topic, p.quarantine))

    def coder(ctx: ServiceContext) -> None:
        w = Worker(ctx, "coder", honest)
        ctx.consume("synod.coder", [WORK_TOPICS["coder"]], w.handle, commit_interval_s=0.02)

    def reviewer(model: SimBackend) -> Any:
        def setup(ctx: ServiceContext) -> None:
            r = Reviewer(ctx, model)
            ctx.consume(f"synod.reviewer.{ctx.instance}", [VOTES], r.handle)

        return setup

    async def run_task(n: int) -> list[Envelope[Any]]:
        task_id = f"q{n}-{uuid.uuid4().hex[:8]}"
        plan = [PlanStep(step_id="c", role="coder", title="Write solve()")]
        body = TaskSubmitted(goal="Write solve()", reviewers=3, plan=plan)
        await team.submit(Envelope.new(body, sender=CLIENT, task_id=task_id))
        return await team.log_of(task_id, timeout_s=90)

    def electorate(log: list[Envelope[Any]]) -> list[str]:
        [vote] = [e.body for e in log if isinstance(e.body, VoteRequested)]
        return vote.electorate

    settings = SupervisorSettings(
        runtime="none", strikes_to_quarantine=2, strike_window=3, quarantine_s=600.0
    )
    supervisors: list[SupervisorService] = []

    def supervisor(ctx: ServiceContext) -> None:
        supervisors.append(install_supervisor(ctx, settings))

    def watching() -> bool:
        """The supervisor hears all four reviewers: until it does, a quarantine is
        withheld (it would leave too few)."""
        [sup] = supervisors
        heard = {n for n, i in sup.core.instances.items() if i.seq >= 0}
        return heard >= {f"reviewer-{i}" for i in range(4)}

    def state() -> str:
        [sup] = supervisors
        now = time.time()
        seen = [
            f"{n}: seq {i.seq}, phi {sup.core.detector.phi(n, now):.1f}, strikes {list(i.strikes)}"
            for n, i in sorted(sup.core.instances.items())
        ]
        return f"{seen}; withheld {sup.core.withheld}; quarantined {sup.core.quarantined()}"

    try:
        await team.add("supervisor", "supervisor-0", supervisor)
        await team.add("consensus", "consensus-0", lambda ctx: install_consensus(ctx, print))
        await team.add("planner", "planner-0", planner)
        await team.add("coder", "coder-0", coder)
        await team.add("reviewer", "reviewer-0", reviewer(liar), heartbeats=True)
        for i in (1, 2, 3):
            await team.add("reviewer", f"reviewer-{i}", reviewer(honest), heartbeats=True)
        await team.assigned()
        await wait_until_async(watching, what="the supervisor to hear every reviewer", timeout_s=60)

        before = [await run_task(n) for n in (1, 2)]
        assert [electorate(log) for log in before] == [
            ["reviewer-0", "reviewer-1", "reviewer-2"]
        ] * 2
        assert all(isinstance(log[-1].body, TaskCompleted) for log in before)

        try:
            await wait_until_async(
                lambda: "reviewer-0" in planners[0].quarantine.active(utc_now()),
                what="reviewer-0 to be quarantined",
                timeout_s=30,
                interval_s=0.2,
            )
        except PollTimeout as exc:
            raise PollTimeout(f"{exc}; the supervisor's view: {state()}") from exc
        notice = planners[0].quarantine.notices["reviewer-0"]
        assert (notice.reason, notice.strikes, notice.role) == ("wrong_votes", 2, "reviewer")

        after = await run_task(3)
    finally:
        await team.close()
    assert electorate(after) == ["reviewer-1", "reviewer-2", "reviewer-3"]
    assert isinstance(after[-1].body, TaskCompleted)
