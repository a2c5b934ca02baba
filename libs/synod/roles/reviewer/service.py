"""Reviewer: one juror of the electorate.

Each reviewer replica has a consumer group of its own on `synod.votes`, so
every replica sees every round request; it votes on the rounds the consensus
service addresses to it, once per (proposal, ballot), with choice, confidence
and rationale.

An answer ballot that carries the task's tests (`VoteRequested.verify`) is
checked first: the juror runs the tests on the answer's workspace
(`AnswerTests`), reports the run on the task's log (`AnswerVerified`, before
its vote, so the planner has it when the decision comes), and rejects the
answer when tests fail, naming them. Passing tests leave the judgement to the
model, as without tests: tests check what they check, not the whole answer.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from dataclasses import replace

from synod.core.resilience.backoff import RetryPolicy
from synod.core.task import RESAMPLE_REASONS
from synod.core.work import vote_record
from synod.errors import ErrorClass
from synod.ids import derived_id
from synod.llm import (
    LLMBackend,
    LLMError,
    LLMRequest,
    ReviewVerdict,
    add_usage,
    load_settings,
    select_backend,
)
from synod.llm.budget import fit, left_of
from synod.llm.errors import LLMBudgetError
from synod.llm.settings import DEFAULT_MAX_TOKENS
from synod.roles.metrics import JUROR_ATTEMPTS, VOTES_CAST
from synod.roles.reviewer.answer_tests import AnswerTests, SuiteRun
from synod.service.host import ServiceContext
from synod.transport import Received
from synod.transport.topics import TASK_EVENTS, VOTES
from synod.transport.workspace import materialise
from synod.wire import AnswerVerified, Envelope, Vote, VoteRequested
from synod.wire.messages import Allowance, Usage, UsageReported, VoteKind

log = logging.getLogger("synod.agents")


MAX_PROPOSALS_REMEMBERED = 10_000


def render_ballot(request: VoteRequested) -> str:
    parts = [
        f"Review the {request.subject} candidates below. Choose the one that is correct "
        "and complete, or reject them all if none is. Answer with kind, choice, "
        "confidence (0..1) and a short rationale."
    ]
    for c in request.candidates:
        parts.append(f"## Candidate {c.candidate_id} (by {c.author or 'unknown'})\n{c.content}")
    return "\n\n".join(parts)


# The part of a ballot a juror gives the tests; the rest is left for the model's
# judgement of an answer whose tests passed.
TESTS_SHARE = 0.7


class Reviewer:
    def __init__(
        self,
        ctx: ServiceContext,
        llm: LLMBackend,
        tests: AnswerTests | None = None,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.ctx = ctx
        self.llm = llm
        self.rng = random.Random()
        self.tests = tests or AnswerTests(self.read_workspace)
        # proposal -> what this juror spent on it, all ballots: its allowance covers them.
        self.spent: OrderedDict[str, Usage] = OrderedDict()
        self.default_max_tokens = default_max_tokens

    async def read_workspace(self, task_id: str, winners: dict[str, str]) -> dict[str, str]:
        kafka = self.ctx.kafka
        return (await materialise(kafka.bootstrap, kafka.topic_prefix, task_id, winners)).files

    def _spend(self, proposal_id: str, usage: Usage) -> None:
        self.spent[proposal_id] = add_usage(self.spent.get(proposal_id, Usage()), usage)
        self.spent.move_to_end(proposal_id)
        while len(self.spent) > MAX_PROPOSALS_REMEMBERED:
            self.spent.popitem(last=False)

    async def judge(
        self,
        request: LLMRequest,
        deadline_s: float,
        allowance: Allowance | None = None,
        proposal_id: str = "",
    ) -> ReviewVerdict:
        loop = asyncio.get_running_loop()
        ends = loop.time() + deadline_s
        attempt = 0
        while True:
            remaining = ends - loop.time()
            try:
                left = None
                if allowance is not None:
                    left = left_of(allowance, self.spent.get(proposal_id, Usage()))
                call = fit(replace(request, attempt=attempt), left, self.default_max_tokens)
                try:
                    response = await asyncio.wait_for(
                        self.llm.complete(call), min(remaining, max(deadline_s / 2, 0.5))
                    )
                except LLMError as exc:
                    self._spend(proposal_id, exc.usage)
                    raise
                self._spend(proposal_id, response.usage)
                JUROR_ATTEMPTS.labels("ok").inc()
                return response.output(ReviewVerdict)
            except LLMBudgetError:
                JUROR_ATTEMPTS.labels("gave_up").inc()
                raise
            except (LLMError, TimeoutError) as exc:
                error_class: ErrorClass = (
                    "transient" if isinstance(exc, TimeoutError) else exc.error_class
                )
                if isinstance(exc, LLMError) and exc.reason in RESAMPLE_REASONS:
                    error_class = "transient"
                delay = JUDGE_RETRY.next_delay(attempt, error_class, self.rng)
                if delay is None or loop.time() + delay >= ends - 0.05:
                    JUROR_ATTEMPTS.labels("gave_up").inc()
                    raise
                JUROR_ATTEMPTS.labels("retried").inc()
                await asyncio.sleep(delay)
                attempt += 1

    async def handle(self, msg: Received) -> None:
        request = msg.envelope.body
        # The planner's VoteRequested opens a proposal; the consensus service then
        # asks jurors round by round. Only the rounds that name us are ours.
        if (
            not isinstance(request, VoteRequested)
            or msg.envelope.sender.role != "consensus"
            or self.ctx.instance not in request.electorate
        ):
            return
        task_id = msg.envelope.task_id or ""
        loop = asyncio.get_running_loop()
        ends = loop.time() + request.deadline_s
        tested: SuiteRun | None = None
        if request.subject == "answer" and request.verify is not None:
            tested = await self.tests.check(task_id, request, request.deadline_s * TESTS_SHARE)
            if tested is None:
                vote = self._vote(
                    request,
                    "abstain",
                    0.0,
                    f"the task's tests were still running after "
                    f"{request.deadline_s * TESTS_SHARE:.1f} s of the ballot",
                )
                await self._cast(msg, request, vote)
                return
            await self._report(msg, request, tested)
        if tested is not None and tested.passed is False:
            vote = self._vote(request, "reject", 1.0, f"the tests fail: {tested.summary}")
        else:
            before = self.spent.get(request.proposal_id, Usage())
            vote = await self._judged(task_id, request, ends - loop.time())
            await self._report_usage(msg, request, before)
            if tested is not None:
                note = "tests pass" if tested.passed else "tests could not be run"
                vote = vote.model_copy(
                    update={"rationale": f"{vote.rationale} ({note}: {tested.summary})"[:10_000]}
                )
        await self._cast(msg, request, vote)

    def _vote(
        self,
        request: VoteRequested,
        kind: VoteKind,
        confidence: float,
        rationale: str,
        choice: str | None = None,
    ) -> Vote:
        return Vote(
            proposal_id=request.proposal_id,
            ballot=request.ballot,
            voter=self.ctx.instance,
            kind=kind,
            choice=choice,
            confidence=confidence,
            rationale=rationale,
        )

    async def _judged(self, task_id: str, request: VoteRequested, budget_s: float) -> Vote:
        """The model's vote on the candidates, within `budget_s` of the ballot."""
        llm_request = LLMRequest(
            role="reviewer",
            task_id=task_id,
            # One call per juror and ballot, so jurors do not all echo one draw.
            step_id=f"{request.proposal_id}/b{request.ballot}/{self.ctx.instance}",
            prompt=render_ballot(request),
            output_model=ReviewVerdict,
            candidates=tuple(request.candidates),
            timeout_s=request.deadline_s,
        )
        try:
            verdict = await self.judge(
                llm_request, max(budget_s, 0.5), request.allowance, request.proposal_id
            )
        except (LLMError, TimeoutError) as exc:
            # A juror that cannot judge abstains: silence would hold the ballot to
            # its deadline, an invented verdict would be a lie.
            return self._vote(request, "abstain", 0.0, f"could not review: {exc!r}"[:1_000])
        known = {c.candidate_id for c in request.candidates}
        if verdict.kind == "choice" and verdict.choice not in known:
            return self._vote(
                request, "abstain", 0.0, f"model chose unknown candidate {verdict.choice!r}"
            )
        return self._vote(
            request,
            verdict.kind,
            verdict.confidence,
            verdict.rationale[:10_000],
            verdict.choice if verdict.kind == "choice" else None,
        )

    async def _report(self, msg: Received, request: VoteRequested, tested: SuiteRun) -> None:
        """The run on the task's log, before the vote: the planner reads the verdicts
        on a decided proposal from there."""
        body = AnswerVerified(
            proposal_id=request.proposal_id,
            ballot=request.ballot,
            voter=self.ctx.instance,
            passed=tested.passed,
            summary=tested.summary[:1_000],
            failed=[name[:300] for name in tested.failed[:100]],
            duration_s=tested.duration_s,
        )
        envelope = Envelope.new(
            body,
            sender=self.ctx.sender,
            task_id=msg.envelope.task_id,
            message_id=derived_id(msg.envelope.message_id, self.ctx.instance, "tests"),
            causes=[msg.envelope.message_id],
            trace=msg.envelope.trace,
        )
        await self.ctx.publish(TASK_EVENTS, envelope)

    async def _report_usage(self, msg: Received, request: VoteRequested, before: Usage) -> None:
        """This ballot's calls on the task's log, so the task's usage has every call."""
        now = self.spent.get(request.proposal_id, Usage())
        if now.calls == before.calls and now.input_tokens == before.input_tokens:
            return  # no call made (or none that cost anything)
        ballot = Usage(
            model=now.model,
            calls=now.calls - before.calls,
            input_tokens=now.input_tokens - before.input_tokens,
            output_tokens=now.output_tokens - before.output_tokens,
            cost_usd=round(max(0.0, now.cost_usd - before.cost_usd), 9),
            unpriced_calls=max(0, now.unpriced_calls - before.unpriced_calls),
        )
        body = UsageReported(
            request_id=request.proposal_id,
            what=f"juror ballot {request.ballot}",
            voter=self.ctx.instance,
            usage=ballot,
        )
        envelope = Envelope.new(
            body,
            sender=self.ctx.sender,
            task_id=msg.envelope.task_id,
            message_id=derived_id(msg.envelope.message_id, self.ctx.instance, "usage"),
            causes=[msg.envelope.message_id],
            trace=msg.envelope.trace,
        )
        await self.ctx.publish(TASK_EVENTS, envelope)

    async def _cast(self, msg: Received, request: VoteRequested, vote: Vote) -> None:
        envelope = vote_record(msg.envelope, vote, self.ctx.sender)
        await self.ctx.publish(VOTES, envelope)
        VOTES_CAST.labels(vote.kind).inc()
        log.info(
            "voted",
            extra={
                "task_id": msg.envelope.task_id,
                "proposal_id": request.proposal_id,
                "kind": vote.kind,
            },
        )


# Inside one ballot a juror retries what another attempt can fix (a 429, a
# timeout, output still invalid after the repair turn) until the deadline, so a
# flaky provider costs a late vote rather than an abstention. Each attempt gets
# at most half the ballot so that a hung call leaves time for one more.
JUDGE_RETRY = RetryPolicy(base_s=0.1, cap_s=2.0, max_attempts=4)


async def setup_reviewer(ctx: ServiceContext) -> None:
    reviewer = Reviewer(ctx, select_backend(), default_max_tokens=load_settings().max_tokens)
    # A group per replica: every juror must see every ballot.
    ctx.consume(f"synod.reviewer.{ctx.instance}", [VOTES], reviewer.handle)
