"""The supervisor's core (sans-I/O): events and time in, actions out.

The adapter (services/supervisor) turns Kafka records into events and carries
out the actions; this module reads no clock and does no I/O, so every decision
replays from a recorded event list.

What it detects, and what it answers with:

- dead instance: phi-accrual over its heartbeats (a plain timeout until a few
  intervals are known) -> `Restart` through a Runtime, at most once per
  `restart_cooldown_s` per instance, and not again before the restarted one
  has beaten once (up to `start_timeout_s`), so a slow start is not killed again.
  Phi-accrual rather than a fixed timeout: it adapts to each instance's own
  heartbeat rhythm, so a timeout need not be tuned per role or host, and the
  threshold is a probability of being wrong rather than a guess in seconds.
- stuck step: an attempt with no outcome past its deadline plus a grace
  (the worker's own deadline should have ended it; silence means the worker
  died or is wedged) -> `Reassign`.
- loop: `loop_repeats` outcomes of one step in a row with the same signature
  (byte-identical output, or the same failure reason), or the step used up
  `attempt_budget` attempts -> `Reassign` with other parameters.
- no remedy left: a step that would be reassigned (stuck, looping, out of
  attempts) once `max_reassignments` are used up -> `Escalate`, once per task:
  the planner puts the task to a person (EscalationRequested, docs/adr/0011).
- repeat hallucinator: a worker whose candidates consensus rejected, or a
  reviewer who voted against the decided outcome, `strikes_to_quarantine`
  times among its last `strike_window` judged ballots -> `Quarantine`; for a
  reviewer, only while `min_reviewers` others are alive: else it is withheld
  and tried again at every tick (not only at its next ballot, which may be long).

Its own silence: a detector must not count its own silence as the others'.
The adapter ticks every `tick_interval_s`; a gap between two ticks longer than
`wake_gap_factor` times that (3 x 1 s by default) means the supervisor itself
was not running (SIGSTOP, a long GC pause, a VM migration, a starved event
loop), not that everyone went quiet at once: the heartbeats of that time are
still queued on the topic, unread. So at such a wake it (1) re-bases every
watched clock: an instance last heard before the previous tick has its
last-heard moved on by the gap less one interval, so its silence counts from
where watching stopped, and the gap never enters its rhythm as one long
interval; and (2) judges nobody (no restart, no reassignment, no release) for
`wake_hold_s` after the wake, while the backlog is read (a step's outcome may
be queued too). An instance that died during the gap stays silent after the
wake and is restarted as soon as its re-based silence crosses the threshold
(about the usual detection time after the wake, at the least `wake_hold_s`).
Re-basing rather than only holding: a hold alone lets the first judgement
after it still see the whole gap as silence unless a heartbeat has arrived;
re-basing alone lets a stuck-step deadline that passed during the gap be
judged before its queued outcome is read.

Its own view: a supervisor cut from the broker (a partition; its ticks go on)
sees every instance go silent at once, and that silence is its own too. The
adapter says, every tick, when its consumer last had an answer from the broker
for every partition it reads (`ViewSeen.fetched_at`; an empty answer counts: it
is the broker saying "nothing new", which a cut cannot fake). While that is more
than `view_stale_s` ago, or there is none (no partition held, as after the
group expelled it), the view is stale: nobody is judged. When it is current
again, that is a wake: every clock last heard before the view went stale moves
on by the time it was stale, and nobody is judged for `wake_hold_s` while the
backlog is read. An instance that died during the cut stays silent after it,
and is restarted about the usual detection time after the view came back.
Why the time of the last answer rather than the consumer's lag: the lag is the
high-water mark less the position, and the high-water mark is itself learned
from fetch answers, so a cut freezes both and the lag reads 0, caught up with a
log it cannot see. Why `view_stale_s` (2 s) suffices: a death takes phi 8 about
6.8 s to detect with the defaults, and what the supervisor last heard of anyone
is at most a heartbeat interval (1 s) older than its last answer, so a view
judged current (answered within 2 s) can never show a cut's silence as long as
a death's.

Still starting: a restarted instance is left to start until its first
heartbeat since the restart, or `start_timeout_s` (120 s) if none comes: a
start that takes longer than the restart cooldown on a loaded machine (a
gateway reading its window of the log) is not killed again while it is still
coming up (the soak of docs/chaos.md: four more kills of one gateway). After
its first heartbeat it is judged like any instance; `restart_cooldown_s`
still spaces two restarts of one that beat since without a new process.

Healthy again: a quarantine lasts `quarantine_s` (doubled for each earlier
quarantine of the same instance, up to `max_quarantine_s`); it is lifted
(`Release`) at the first tick after that time at which the instance is alive
(its phi is under the threshold). Its strikes are cleared on release, so it
gets a clean record, but the doubling remembers a repeat offender.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from synod.core.resilience.detector import PhiAccrualDetector
from synod.core.supervisor.vocabulary import (
    Action,
    DecisionSeen,
    Escalate,
    Event,
    HeartbeatSeen,
    Quarantine,
    Reassign,
    Release,
    Restart,
    StepCompletedSeen,
    StepFailedSeen,
    StepParkedSeen,
    StepRequestedSeen,
    SupervisorConfig,
    ViewSeen,
    VoteSeen,
)

# ---------------------------------------------------------------- state


@dataclass
class _Step:
    attempts: dict[int, StepRequestedSeen] = field(default_factory=dict)
    outcomes: dict[int, str] = field(default_factory=dict)  # attempt -> signature
    reassigned_after: set[int] = field(default_factory=set)
    reassignments: int = 0
    parked_until: dict[int, float] = field(default_factory=dict)  # attempt -> rerun's end


@dataclass
class _Instance:
    role: str
    seq: int = -1
    last_seen: float = 0.0
    restarted_at: float | None = None
    heard_since_restart: bool = True  # False from a Restart to its next heartbeat
    strikes: deque[bool] = field(default_factory=deque)  # last judged ballots: True = strike
    quarantined_until: float | None = None
    quarantines: int = 0


@dataclass
class Supervisor:
    config: SupervisorConfig = field(default_factory=SupervisorConfig)
    instances: dict[str, _Instance] = field(default_factory=dict)
    steps: dict[tuple[str, str], _Step] = field(default_factory=dict)
    votes: dict[str, dict[str, str]] = field(default_factory=dict)  # proposal -> voter -> pos
    decided: dict[str, str] = field(default_factory=dict)  # proposal -> outcome
    escalated: dict[str, None] = field(default_factory=dict)  # tasks asked about (ordered set)
    # Quarantines due but withheld, as they would leave too few reviewers: name ->
    # reason. Tried again at every tick, so an offender whose strikes came while an
    # honest reviewer was briefly suspected does not wait for its next ballot.
    withheld: dict[str, str] = field(default_factory=dict)
    detector: PhiAccrualDetector = field(init=False)
    last_tick: float | None = None
    woke_at: float | None = None  # the last tick after a gap of its own (see the docstring)
    woke_from: str = ""  # what that gap was: "pause" (no ticks) or "view" (no answers)
    # Its own view of the log (ViewSeen; see the docstring). `seen_until`: the time
    # up to which it has seen the log (its last answer), or to which a wake re-based.
    view_known: bool = False
    view_at: float | None = None
    view_stale: bool = False
    seen_until: float | None = None

    def __post_init__(self) -> None:
        c = self.config
        self.detector = PhiAccrualDetector(
            min_std_s=c.min_std_s,
            acceptable_pause_s=c.acceptable_pause_s,
            bootstrap_timeout_s=c.bootstrap_timeout_s,
        )

    # ------------------------------------------------------------ inputs

    def handle(self, event: Event, now: float) -> list[Action]:
        if isinstance(event, HeartbeatSeen):
            return self._heartbeat(event, now)
        if isinstance(event, ViewSeen):
            self.view_known, self.view_at = True, event.fetched_at
            return []
        if isinstance(event, StepRequestedSeen):
            self._step(event.task_id, event.step_id).attempts.setdefault(event.attempt, event)
            return []
        if isinstance(event, StepCompletedSeen | StepFailedSeen):
            return self._outcome(event)
        if isinstance(event, StepParkedSeen):
            parked = self._step(event.task_id, event.step_id).parked_until
            parked[event.attempt] = max(parked.get(event.attempt, event.until), event.until)
            return []
        if isinstance(event, VoteSeen):
            outcome = self.decided.get(event.proposal_id)
            if outcome is not None:
                # Votes and decisions travel on different topics: a vote may come
                # in after the decision it lost (the tally stopped early).
                wrong = event.position != outcome
                return self._judge(event.voter, "reviewer", wrong, "wrong_votes", now)
            if len(self.votes) < self.config.max_tracked_steps:
                self.votes.setdefault(event.proposal_id, {})[event.voter] = event.position
            return []
        if isinstance(event, DecisionSeen):
            return self._decision(event, now)
        # TaskEnded: nothing more can be redone for it.
        for key in [k for k in self.steps if k[0] == event.task_id]:
            del self.steps[key]
        for proposal in [p for p in self.votes if p.startswith(f"{event.task_id}/")]:
            del self.votes[proposal]
        self.escalated.pop(event.task_id, None)
        return []

    def tick(self, now: float) -> list[Action]:
        """What time alone decides: dead instances, stuck steps, served quarantines."""
        c = self.config
        paused = self._woke(now)  # both run: each keeps its own clock
        blind = self._blind(now)
        if paused or blind or (self.woke_at is not None and now - self.woke_at < c.wake_hold_s):
            return []
        actions: list[Action] = []
        for name in sorted(self.instances):
            inst = self.instances[name]
            if (
                inst.quarantined_until is None
                and inst.seq >= 0
                and now - inst.last_seen > c.forget_after_s
            ):
                del self.instances[name]
                self.detector.forget(name)
                continue
            phi = self.detector.phi(name, now)
            until = inst.quarantined_until
            if until is not None and now >= until and phi < c.phi_threshold:
                inst.quarantined_until = None
                inst.strikes.clear()
                actions.append(Release(name, inst.role, "served"))
            if inst.seq < 0:
                continue  # never seen alive (only judged), or stopped on purpose
            if phi >= c.phi_threshold and not self._starting(inst, now):
                inst.restarted_at = now
                inst.heard_since_restart = False
                actions.append(Restart(name, inst.role, "dead", phi))
        for name, reason in sorted(self.withheld.items()):
            offender = self.instances.get(name)
            if offender is None or offender.quarantined_until is not None:
                del self.withheld[name]  # forgotten, or quarantined on a later ballot
            elif sum(offender.strikes) < c.strikes_to_quarantine:
                del self.withheld[name]  # its record has improved since (a release clears it)
            else:
                actions.extend(self._quarantine(name, offender, reason, now))
        for (task_id, step_id), step in sorted(self.steps.items()):
            if not step.attempts:
                continue
            newest = max(step.attempts)
            if newest in step.outcomes or newest in step.reassigned_after:
                continue
            request = step.attempts[newest]
            ends = max(
                request.requested_at + request.deadline_s, step.parked_until.get(newest, 0.0)
            )
            if now > ends + c.lease_grace_s:
                actions.extend(self._reassign(task_id, step_id, step, newest, "stuck"))
        return actions

    def _starting(self, inst: _Instance, now: float) -> bool:
        """Restarted and not to be restarted yet: within the cooldown, or not heard
        since (its start is not over) and within `start_timeout_s`."""
        if inst.restarted_at is None:
            return False
        since = now - inst.restarted_at
        c = self.config
        return since < c.restart_cooldown_s or (
            not inst.heard_since_restart and since < c.start_timeout_s
        )

    def _woke(self, now: float) -> bool:
        """Whether this tick follows a gap of the supervisor's own; if so, re-base."""
        c = self.config
        last, self.last_tick = self.last_tick, now
        if last is None or now - last <= c.wake_gap_factor * c.tick_interval_s:
            return False
        self._rebase(last, now - last - c.tick_interval_s)
        if self.view_known:
            # Up to here the gap is accounted for; a stale view from now on is new.
            back = now - c.tick_interval_s
            self.seen_until = back if self.seen_until is None else max(self.seen_until, back)
        self.woke_at, self.woke_from = now, "pause"
        return True

    def _blind(self, now: float) -> bool:
        """Whether its own view of the log is stale now (nobody is judged), or came
        back at this tick (a wake: re-base by the time it was stale)."""
        if not self.view_known:
            return False
        at = self.view_at
        if at is None or now - at > self.config.view_stale_s:
            self.view_stale = True
            return True
        if not self.view_stale:
            self.seen_until = at if self.seen_until is None else max(self.seen_until, at)
            return False
        self.view_stale = False
        if self.seen_until is not None and at > self.seen_until:
            self._rebase(self.seen_until, at - self.seen_until)
        self.seen_until = at
        self.woke_at, self.woke_from = now, "view"
        return True

    def _rebase(self, before: float, away: float) -> None:
        """Every clock last heard at or before `before` moves on by `away` (not anyone's
        silence: the supervisor's own)."""
        self.detector.skip(before, away)
        for inst in self.instances.values():
            if inst.last_seen <= before:
                inst.last_seen += away

    # ------------------------------------------------------------ queries

    def quarantined(self) -> dict[str, float]:
        return {
            name: inst.quarantined_until
            for name, inst in self.instances.items()
            if inst.quarantined_until is not None
        }

    # ------------------------------------------------------------ internals

    def reachability(
        self, now: float, cut_off_after_s: float = 5.0
    ) -> tuple[list[str], list[str]] | None:
        """(reachable, suspected) instances by the failure detector, for consensus
        (docs/cap.md). None when this supervisor has heard nobody for `cut_off_after_s`:
        then it is the one cut off, and its view says nothing about the others."""
        if self.view_stale:
            return None  # its own view is stale (see the docstring)
        if not self.instances or now - max(i.last_seen for i in self.instances.values()) > (
            cut_off_after_s
        ):
            return None
        threshold = self.config.phi_threshold
        reachable: list[str] = []
        suspected: list[str] = []
        for name in sorted(self.instances):
            alive = self.instances[name].seq >= 0 and self.detector.phi(name, now) < threshold
            (reachable if alive else suspected).append(name)
        return reachable, suspected

    def _heartbeat(self, event: HeartbeatSeen, now: float) -> list[Action]:
        inst = self.instances.get(event.instance)
        if event.state == "stopping":
            # A graceful stop (scale-down, redeploy) is not a death: stop watching.
            self.detector.forget(event.instance)
            if inst is not None:
                inst.seq = -1
            return []
        if inst is None:
            inst = self.instances[event.instance] = _Instance(role=event.role)
        if event.seq < inst.seq:
            # A new process under the old id: the silence while it restarted is
            # not part of its rhythm, so its history starts again; and the restart
            # it came from is over, so the cooldown ends.
            self.detector.forget(event.instance)
            inst.restarted_at = None
        inst.seq = event.seq
        inst.last_seen = now
        inst.heard_since_restart = True
        self.detector.heartbeat(event.instance, now)
        return []

    def _step(self, task_id: str, step_id: str) -> _Step:
        key = (task_id, step_id)
        step = self.steps.get(key)
        if step is None:
            if len(self.steps) >= self.config.max_tracked_steps:
                # Bounded memory: drop the oldest tracked step (dicts keep order).
                del self.steps[next(iter(self.steps))]
            step = self.steps[key] = _Step()
        return step

    def _outcome(self, event: StepCompletedSeen | StepFailedSeen) -> list[Action]:
        step = self._step(event.task_id, event.step_id)
        signature = event.signature
        if isinstance(event, StepFailedSeen) and not event.repeatable:
            signature = f"{signature}#{event.attempt}"  # never equal to another attempt's
        step.outcomes.setdefault(event.attempt, signature)
        c = self.config
        recent = [step.outcomes[a] for a in sorted(step.outcomes)][-c.loop_repeats :]
        if len(recent) == c.loop_repeats and len(set(recent)) == 1:
            return self._reassign(event.task_id, event.step_id, step, event.attempt, "loop")
        if isinstance(event, StepCompletedSeen):
            return []
        if len(set(step.attempts) | set(step.outcomes)) >= c.attempt_budget:
            return self._reassign(
                event.task_id, event.step_id, step, event.attempt, "attempt_budget"
            )
        return []

    def _reassign(
        self, task_id: str, step_id: str, step: _Step, after: int, reason: str
    ) -> list[Action]:
        c = self.config
        if after in step.reassigned_after:
            return []
        if step.reassignments >= c.max_reassignments:
            return self._escalate(task_id, step_id, step, after, reason)
        step.reassigned_after.add(after)
        n = step.reassignments
        step.reassignments += 1
        used = step.attempts.get(after)
        # The model after the one that failed (the first listed if it is not
        # listed); temperature and variant move on with each reassignment, so
        # the new attempt differs even when the model list has one entry.
        failed_model = used.model if used is not None else ""
        index = c.models.index(failed_model) if failed_model in c.models else 0
        model = c.models[(index + 1) % len(c.models)]
        temperature = c.temperatures[n % len(c.temperatures)]
        variant = c.prompt_variants[n % len(c.prompt_variants)]
        if used is not None and used.prompt_variant.startswith("revise-"):
            variant = f"{used.prompt_variant}+{variant}"  # still a revision of that round
        return [Reassign(task_id, step_id, after, model, temperature, variant, reason)]

    def _escalate(
        self, task_id: str, step_id: str, step: _Step, after: int, reason: str
    ) -> list[Action]:
        # Judged once: a stuck attempt is not asked about again at every tick.
        step.reassigned_after.add(after)
        if not self.config.escalate or task_id in self.escalated:
            return []
        self.escalated[task_id] = None
        while len(self.escalated) > self.config.max_tracked_steps:
            del self.escalated[next(iter(self.escalated))]
        return [Escalate(task_id, step_id, after, reason, step.reassignments)]

    def _decision(self, event: DecisionSeen, now: float) -> list[Action]:
        votes = self.votes.pop(event.proposal_id, {})
        if event.outcome == "no_quorum":
            return []  # nobody was judged right or wrong
        self.decided[event.proposal_id] = event.outcome
        while len(self.decided) > self.config.max_tracked_steps:
            del self.decided[next(iter(self.decided))]
        actions: list[Action] = []
        for voter in sorted(votes):
            actions.extend(
                self._judge(voter, "reviewer", votes[voter] != event.outcome, "wrong_votes", now)
            )
        # Producers are judged on every decided ballot, accepted ones too: a
        # window of strikes only would quarantine anyone with enough history.
        rejected = event.outcome == "rejected"
        for producer in sorted(set(event.producers)):
            role = self.instances[producer].role if producer in self.instances else "worker"
            actions.extend(self._judge(producer, role, rejected, "rejected_candidates", now))
        return actions

    def _judge(self, name: str, role: str, strike: bool, reason: str, now: float) -> list[Action]:
        c = self.config
        inst = self.instances.get(name)
        if inst is None:
            inst = self.instances[name] = _Instance(role=role)
        inst.strikes.append(strike)
        while len(inst.strikes) > c.strike_window:
            inst.strikes.popleft()
        strikes = sum(inst.strikes)
        if inst.quarantined_until is not None or strikes < c.strikes_to_quarantine:
            return []
        return self._quarantine(name, inst, reason, now)

    def _quarantine(self, name: str, inst: _Instance, reason: str, now: float) -> list[Action]:
        """Quarantine one whose strikes call for it, unless that would leave too few
        reviewers: then it is withheld, and tried again at each tick (`tick`)."""
        c = self.config
        if inst.role == "reviewer" and self._spare_reviewers(name, now) < c.min_reviewers:
            self.withheld[name] = reason
            return []
        self.withheld.pop(name, None)
        strikes = sum(inst.strikes)
        duration = min(c.max_quarantine_s, c.quarantine_s * 2**inst.quarantines)
        inst.quarantines += 1
        inst.quarantined_until = now + duration
        return [Quarantine(name, inst.role, now + duration, reason, strikes)]

    def _spare_reviewers(self, excluding: str, now: float) -> int:
        return sum(
            1
            for name, inst in self.instances.items()
            if name != excluding
            and inst.role == "reviewer"
            and inst.quarantined_until is None
            and inst.seq >= 0
            and self.detector.phi(name, now) < self.config.phi_threshold
        )


def phi_is_finite(value: float) -> float:
    """Phi for metrics and logs: infinity (a bootstrap timeout) as a large number."""
    return value if math.isfinite(value) else 1e9
