"""A task's budget as a fold of its log: what it spent, what is granted out, what is free.

The rule (docs/adr/0011): the planner is the one writer of grants. Every
StepRequested and VoteRequested it logs carries an `Allowance`, and a grant
is only made from what is free:

    free = limit - spent - reserved

`spent` sums the usage of every usage-carrying record of the task's log
(StepCompleted of winners and losers alike, StepFailed, StepRetrying of parked
runs, UsageReported of jurors, the planner and cancelled calls), so it is the
same in every fold and in `synod check`. `reserved` is what attempts still
out may yet spend: a step attempt's grant minus what it reported so far, until
its StepCompleted / StepFailed / cancel report; a vote's grant (per juror,
times the electorate) minus what its jurors reported, for the task's life (a
late juror may still call). A worker makes a call only if the call's worst
case fits what is left of its allowance, so spent + reserved <= limit holds
after every record, and so does spent <= limit.

A step takes half of what is free, a juror half of it shared by the
electorate: later steps and the next round still find room.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synod.core.task.actions import Action, Publish
from synod.core.task.records import add_usage as add
from synod.core.task.records import usage
from synod.core.task.state import TaskState
from synod.wire import Decision, StepCompleted, StepFailed, StepRequested, Usage, VoteRequested
from synod.wire.messages import Allowance, Budget, StepRetrying, UsageReported

# Below this many tokens a grant is not made: a structured call (prompt, schema,
# reply, a repair turn) hardly fits in less.
MIN_GRANT_TOKENS = 1_024
MIN_GRANT_COST_USD = 1e-6
BUDGET_EXHAUSTED = "budget_exhausted"  # the StepFailed reason of a call that did not fit


def tokens(u: Usage) -> int:
    return u.input_tokens + u.output_tokens


def limit(s: TaskState) -> Budget | None:
    """The budget in force: the newest raise, else the task's own, else the default."""
    if s.raised_budget is not None:
        return s.raised_budget
    if s.submitted is not None and s.submitted.body.budget is not None:
        return s.submitted.body.budget
    return s.config.default_budget


def limited(b: Budget | None) -> bool:
    return b is not None and (
        b.max_tokens is not None or b.max_cost_usd is not None or b.max_model_calls is not None
    )


# ---------------------------------------------------------------- fold


def fold(s: TaskState, envelope: Any) -> None:
    """Note the usage a record carries and the grant a request makes."""
    body = envelope.body
    if isinstance(body, StepCompleted | StepFailed | StepRetrying | UsageReported):
        s.spent_by[envelope.message_id] = body.usage
        request = body.request_id if isinstance(body, UsageReported) else _cause(envelope)
        if isinstance(body, UsageReported) and body.what.startswith("juror"):
            request = _juror_report(s, body)
        if request:
            s.spent_under[request] = add(s.spent_under.get(request, Usage()), body.usage)
            ends = isinstance(body, StepCompleted | StepFailed)
            if ends or (isinstance(body, UsageReported) and body.what == "cancelled"):
                s.ended.add(request)
        if isinstance(body, StepFailed) and body.reason == BUDGET_EXHAUSTED:
            granted = s.grants.get(request)
            s.refusals.append(granted[0] if granted is not None else Allowance())
    elif (
        isinstance(body, StepRequested | VoteRequested)
        and envelope.sender.role == "planner"
        and body.allowance is not None
    ):
        s.granted_requests.add(envelope.message_id)
        if isinstance(body, StepRequested):
            s.grants[envelope.message_id] = (body.allowance, 1, True)
        else:
            # One grant per juror: jurors see the consensus service's ballots, not
            # this record, and report under the proposal id and their own name.
            for voter in body.electorate:
                s.grants[_juror(body.proposal_id, voter)] = (body.allowance, 1, False)
    elif isinstance(body, Decision):
        # No ballot follows the deciding one: a juror that reported in it is done.
        s.decided_ballot.setdefault(body.proposal_id, body.ballot)
        for (proposal, voter), ballots in s.juror_ballots.items():
            if proposal == body.proposal_id and body.ballot in ballots:
                s.ended.add(_juror(proposal, voter))


def _juror(proposal_id: str, voter: str) -> str:
    return f"{proposal_id}#{voter}"


def _juror_report(s: TaskState, body: UsageReported) -> str:
    """A juror's usage in one ballot (`what` is `juror ballot <n>`): its grant's key."""
    tail = body.what.rsplit(" ", 1)[-1]
    ballot = int(tail) if tail.isdigit() else 0
    key = _juror(body.request_id, body.voter)
    s.juror_ballots.setdefault((body.request_id, body.voter), set()).add(ballot)
    if s.decided_ballot.get(body.request_id) == ballot:
        s.ended.add(key)
    return key


def _cause(envelope: Any) -> str:
    return str(envelope.causes[0]) if envelope.causes else ""


# ---------------------------------------------------------------- queries


def spent(s: TaskState) -> Usage:
    """The sum of every usage on the task's log."""
    return usage(s)


@dataclass
class Free:
    tokens: int | None
    cost_usd: float | None
    calls: int | None


def _reserved(s: TaskState, extra: list[tuple[Allowance, int]]) -> tuple[int, float, int]:
    t, c, n = 0, 0.0, 0
    grants = [(a, j, rid) for rid, (a, j, _) in s.grants.items()]
    grants += [(a, j, "") for a, j in extra]
    for allowance, jurors, rid in grants:
        if rid and rid in s.ended:
            continue
        used = s.spent_under.get(rid, Usage()) if rid else Usage()
        if allowance.tokens is not None:
            t += max(0, allowance.tokens * jurors - tokens(used))
        if allowance.cost_usd is not None:
            c += max(0.0, allowance.cost_usd * jurors - used.cost_usd)
        if allowance.calls is not None:
            n += max(0, allowance.calls * jurors - used.calls)
    return t, c, n


def free(s: TaskState, extra: list[tuple[Allowance, int]] | None = None) -> Free | None:
    """What no record spent or reserved yet; None: no limit."""
    b = limit(s)
    if b is None or not limited(b):
        return None
    used = spent(s)
    t, c, n = _reserved(s, extra or [])
    return Free(
        tokens=None if b.max_tokens is None else b.max_tokens - tokens(used) - t,
        cost_usd=None if b.max_cost_usd is None else b.max_cost_usd - used.cost_usd - c,
        calls=None if b.max_model_calls is None else b.max_model_calls - used.calls - n,
    )


def grant(room: Free, jurors: int = 0) -> Allowance | None:
    """Half of `room` for one step (jurors=0), or for each of `jurors` jurors; None: too
    little is free for a useful call."""
    share = 2 * max(jurors, 1)
    t = c = n = None
    if room.tokens is not None:
        t = room.tokens // share
        if t < MIN_GRANT_TOKENS:
            return None
    if room.cost_usd is not None:
        c = round(room.cost_usd / share, 9)
        if c < MIN_GRANT_COST_USD:
            return None
    if room.calls is not None:
        need = max(jurors, 1)
        if room.calls < need:
            return None
        n = max(1, room.calls // share)
    return Allowance(tokens=t, cost_usd=c, calls=n)


def in_flight(s: TaskState) -> bool:
    """A step attempt holding a grant has not ended: what it leaves may come back."""
    return any(step and rid not in s.ended for rid, (_, _, step) in s.grants.items())


def standing(s: TaskState) -> str:
    """`ok`; `hold` (a call was refused for want of budget since the last raise and
    attempts still out may leave room: request nothing new); `exhausted` (nothing is
    out, and what is free would not make a bigger grant than the one refused)."""
    b = limit(s)
    if b is None or not limited(b) or b.on_exhausted == "warn":
        return "ok"
    recent = s.refusals[s.refusals_at_raise :]
    if not recent:
        return "ok"
    if in_flight(s):
        return "hold"
    room = free(s)
    offer = grant(room) if room is not None else None
    if offer is None or not any(_bigger(offer, r) for r in [_largest(recent)]):
        return "exhausted"
    return "ok"


def _measure(a: Allowance) -> float:
    for value in (a.tokens, a.cost_usd, a.calls):
        if value is not None:
            return float(value)
    return 0.0


def _largest(refused: list[Allowance]) -> Allowance:
    return max(refused, key=_measure)


def _bigger(offer: Allowance, refused: Allowance) -> bool:
    return _measure(offer) > _measure(refused)


def is_request(action: Action) -> bool:
    return isinstance(action, Publish) and isinstance(action.body, StepRequested | VoteRequested)


def allot(s: TaskState, actions: list[Action]) -> tuple[list[Action], bool]:
    """Give each request its allowance, in order; drop those that do not fit.

    Returns the actions and whether a request was held back for want of budget
    with nothing granted that may give some back (no step out, none granted now).
    """
    b = limit(s)
    if b is None or not limited(b) or b.on_exhausted == "warn":
        return actions, False
    out: list[Action] = []
    extra: list[tuple[Allowance, int]] = []
    held = False
    granted_step = False
    for action in actions:
        body = action.body if isinstance(action, Publish) else None
        if not isinstance(action, Publish) or not isinstance(body, StepRequested | VoteRequested):
            out.append(action)
            continue
        if action.message_id in s.granted_requests or action.message_id in s.seen:
            out.append(action)  # logged already, with the allowance it got then
            continue
        room = free(s, extra)
        assert room is not None
        jurors = len(body.electorate) if isinstance(body, VoteRequested) else 0
        allowance = grant(room, jurors)
        if allowance is None:
            held = True
            continue
        extra.append((allowance, max(jurors, 1)))
        granted_step = granted_step or jurors == 0
        given = body.model_copy(update={"allowance": allowance})
        out.append(Publish(given, action.message_id, action.attempt, action.causes))
    return out, held and not granted_step and not in_flight(s)
