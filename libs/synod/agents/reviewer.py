"""Reviewer: one juror of the electorate.

Each reviewer replica has a consumer group of its own on `synod.votes`, so
every replica sees every round request; it votes on the rounds the consensus
service addresses to it, once per (proposal, ballot), with choice, confidence
and rationale.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import replace

from synod.agents.ids import derived_id
from synod.agents.metrics import JUROR_ATTEMPTS, VOTES_CAST
from synod.errors import ErrorClass
from synod.llm import LLMBackend, LLMError, LLMRequest, ReviewVerdict
from synod.plan.task import RESAMPLE_REASONS
from synod.resilience.backoff import RetryPolicy
from synod.service.runtime import ServiceContext
from synod.transport import Received
from synod.transport.topics import VOTES
from synod.wire import Envelope, Vote, VoteRequested

log = logging.getLogger("synod.agents")


def render_ballot(request: VoteRequested) -> str:
    parts = [
        f"Review the {request.subject} candidates below. Choose the one that is correct "
        "and complete, or reject them all if none is. Answer with kind, choice, "
        "confidence (0..1) and a short rationale."
    ]
    for c in request.candidates:
        parts.append(f"## Candidate {c.candidate_id} (by {c.author or 'unknown'})\n{c.content}")
    return "\n\n".join(parts)


class Reviewer:
    def __init__(self, ctx: ServiceContext, llm: LLMBackend) -> None:
        self.ctx = ctx
        self.llm = llm
        self.rng = random.Random()

    async def judge(self, request: LLMRequest, deadline_s: float) -> ReviewVerdict:
        loop = asyncio.get_running_loop()
        ends = loop.time() + deadline_s
        attempt = 0
        while True:
            remaining = ends - loop.time()
            try:
                response = await asyncio.wait_for(
                    self.llm.complete(replace(request, attempt=attempt)),
                    min(remaining, max(deadline_s / 2, 0.5)),
                )
                JUROR_ATTEMPTS.labels("ok").inc()
                return response.output(ReviewVerdict)
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
        llm_request = LLMRequest(
            role="reviewer",
            task_id=msg.envelope.task_id or "",
            # One call per juror and ballot, so jurors do not all echo one draw.
            step_id=f"{request.proposal_id}/b{request.ballot}/{self.ctx.instance}",
            prompt=render_ballot(request),
            output_model=ReviewVerdict,
            candidates=tuple(request.candidates),
            timeout_s=request.deadline_s,
        )
        try:
            verdict = await self.judge(llm_request, request.deadline_s)
            known = {c.candidate_id for c in request.candidates}
            if verdict.kind == "choice" and verdict.choice not in known:
                vote = Vote(
                    proposal_id=request.proposal_id,
                    ballot=request.ballot,
                    voter=self.ctx.instance,
                    kind="abstain",
                    confidence=0.0,
                    rationale=f"model chose unknown candidate {verdict.choice!r}",
                )
            else:
                vote = Vote(
                    proposal_id=request.proposal_id,
                    ballot=request.ballot,
                    voter=self.ctx.instance,
                    kind=verdict.kind,
                    choice=verdict.choice if verdict.kind == "choice" else None,
                    confidence=verdict.confidence,
                    rationale=verdict.rationale[:10_000],
                )
        except (LLMError, TimeoutError) as exc:
            # A juror that cannot judge abstains: silence would hold the ballot to
            # its deadline, an invented verdict would be a lie.
            vote = Vote(
                proposal_id=request.proposal_id,
                ballot=request.ballot,
                voter=self.ctx.instance,
                kind="abstain",
                confidence=0.0,
                rationale=f"could not review: {exc!r}"[:1_000],
            )
        envelope = Envelope.new(
            vote,
            sender=self.ctx.sender,
            task_id=msg.envelope.task_id,
            message_id=derived_id(msg.envelope.message_id, self.ctx.instance),
            causes=[msg.envelope.message_id],
            trace=msg.envelope.trace,
        )
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
    from synod.llm import select_backend

    reviewer = Reviewer(ctx, select_backend())
    # A group per replica: every juror must see every ballot.
    ctx.consume(f"synod.reviewer.{ctx.instance}", [VOTES], reviewer.handle)
