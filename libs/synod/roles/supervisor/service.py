"""The supervisor service: Kafka in, the supervisor core, orders and restarts out.

Consumes `synod.heartbeats`, `synod.task-events` and `synod.votes` (group
`synod.supervisor`, from the latest offset on a first start: a supervisor
watches the present), turns records into core events and carries out the
core's actions, both through `synod.core.supervisor.intake` (shared with
synod.sim):

- Restart -> the configured Runtime (local processes, Kubernetes, or none).
- Reassign -> a `StepReassigned` appended to the task's log, with an id derived
  from (task, step, attempt judged), so a repeat is a duplicate.
- Escalate -> an `EscalationRequested` on the task's log (id derived from the
  task, so once per task): the planner puts the task to a person.
- Quarantine / Release -> a `QuarantineNotice` on the compacted
  `synod.supervisor`, keyed by instance; planners read it (synod.roles.planner.quarantine).

A ticker feeds the core the time every `tick_interval_s` (also in the core's
config: a much longer gap between ticks is the supervisor's own pause, and the
core then re-bases its clocks and holds its judgements; engine.py), and before
each tick its own view of the log: when the broker last answered its consumer's
fetches (`ViewSeen`; a supervisor cut from the broker holds its judgements the
same way). The tick waits for no broker: the reachability report goes out in
the background, so a cut cannot stall the ticks (and pass for a pause).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from pathlib import Path
from typing import Any, Literal

from prometheus_client import Counter, Gauge
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from synod.core import supervisor as core
from synod.core.supervisor import intake
from synod.core.supervisor.intake import signature as signature  # the adapter tests' name
from synod.runtimes import (
    KubernetesRuntime,
    LocalProcessRuntime,
    NoRuntime,
    Runtime,
)
from synod.service.host import ServiceContext
from synod.transport import KeyOrderedConsumer, Received
from synod.transport.topics import HEARTBEATS, SUPERVISOR, TASK_EVENTS, VOTES
from synod.wire import Envelope, Reachability

log = logging.getLogger("synod.supervisor")

GROUP = "synod.supervisor"

SUSPECTS = Gauge(
    "synod_supervisor_suspects", "Instances whose phi is over the threshold now", ["role"]
)
RESTARTS = Counter(
    "synod_supervisor_restarts_total",
    "Restarts asked of the runtime",
    ["role", "reason", "outcome"],
)
REASSIGNMENTS = Counter(
    "synod_supervisor_reassignments_total", "Steps reassigned with other parameters", ["reason"]
)
QUARANTINES = Counter(
    "synod_supervisor_quarantines_total", "Instances put in quarantine", ["role", "reason"]
)
RELEASES = Counter("synod_supervisor_releases_total", "Quarantines lifted", ["role"])
VIEW_AGE = Gauge(
    "synod_supervisor_view_age_seconds",
    "Seconds since the broker last answered the supervisor's consumer for every partition "
    "it reads (+Inf: it holds none); over SYNOD_SUPERVISOR_VIEW_STALE_S it judges nobody",
)
ESCALATIONS = Counter(
    "synod_supervisor_escalations_total", "Tasks put to a person by the supervisor", ["reason"]
)


class SupervisorSettings(BaseSettings):
    """SYNOD_SUPERVISOR_*: how the supervisor decides and acts."""

    model_config = SettingsConfigDict(env_prefix="SYNOD_SUPERVISOR_", extra="ignore")

    # The chart sets SYNOD_RUNTIME, SYNOD_NAMESPACE and SYNOD_RELEASE_FULLNAME.
    runtime: Literal["none", "local", "kubernetes"] = Field(
        default="none", validation_alias=AliasChoices("SYNOD_SUPERVISOR_RUNTIME", "SYNOD_RUNTIME")
    )
    run_dir: Path | None = Field(default=None, description="synod up's run dir (runtime=local)")
    namespace: str | None = Field(
        default=None,
        description="Kubernetes namespace",
        validation_alias=AliasChoices("SYNOD_SUPERVISOR_NAMESPACE", "SYNOD_NAMESPACE"),
    )
    release_fullname: str = Field(
        default="synod",
        description="the Helm release's full name; Deployments are <it>-<role>",
        validation_alias=AliasChoices(
            "SYNOD_SUPERVISOR_RELEASE_FULLNAME", "SYNOD_RELEASE_FULLNAME"
        ),
    )
    tick_interval_s: float = Field(default=1.0, gt=0)
    wake_gap_factor: float = Field(
        default=3.0, gt=1, description="a tick gap over this x tick_interval_s is our own pause"
    )
    wake_hold_s: float = Field(
        default=5.0, ge=0, description="after such a pause, judge nobody for this long"
    )
    view_stale_s: float = Field(
        default=2.0,
        gt=0,
        description="no answer from the broker for this long: our own view is stale, judge nobody",
    )
    start_timeout_s: float = Field(
        default=120.0,
        ge=0,
        description="a restarted instance is left this long to send its first heartbeat",
    )
    phi_threshold: float = Field(default=8.0, gt=0)
    acceptable_pause_s: float = Field(default=3.0, ge=0)
    bootstrap_timeout_s: float = Field(default=10.0, gt=0)
    restart_cooldown_s: float = Field(default=30.0, ge=0)
    lease_grace_s: float = Field(default=10.0, ge=0)
    loop_repeats: int = Field(default=2, ge=2)
    attempt_budget: int = Field(default=4, ge=1)
    max_reassignments: int = Field(default=2, ge=0)
    models: str = Field(default="", description="comma-separated models to reassign to")
    temperatures: str = "0.7,1.0,0.3"
    prompt_variants: str = "rephrase,step-by-step,minimal"
    strikes_to_quarantine: int = Field(default=3, ge=1)
    strike_window: int = Field(default=5, ge=1)
    quarantine_s: float = Field(default=300.0, gt=0)
    max_quarantine_s: float = Field(default=3600.0, gt=0)
    min_reviewers: int = Field(default=3, ge=0)
    escalate: bool = Field(
        default=True, description="ask for a person when a step outruns its reassignments"
    )

    def config(self) -> core.SupervisorConfig:
        return core.SupervisorConfig(
            phi_threshold=self.phi_threshold,
            acceptable_pause_s=self.acceptable_pause_s,
            bootstrap_timeout_s=self.bootstrap_timeout_s,
            restart_cooldown_s=self.restart_cooldown_s,
            lease_grace_s=self.lease_grace_s,
            loop_repeats=self.loop_repeats,
            attempt_budget=self.attempt_budget,
            max_reassignments=self.max_reassignments,
            # "" (the backend's default) first, so the first reassignment changes model.
            models=("", *[m.strip() for m in self.models.split(",") if m.strip()]),
            temperatures=tuple(float(t) for t in self.temperatures.split(",") if t.strip()),
            prompt_variants=tuple(v.strip() for v in self.prompt_variants.split(",") if v.strip()),
            strikes_to_quarantine=self.strikes_to_quarantine,
            strike_window=self.strike_window,
            quarantine_s=self.quarantine_s,
            max_quarantine_s=self.max_quarantine_s,
            min_reviewers=self.min_reviewers,
            escalate=self.escalate,
            tick_interval_s=self.tick_interval_s,
            wake_gap_factor=self.wake_gap_factor,
            wake_hold_s=self.wake_hold_s,
            view_stale_s=self.view_stale_s,
            start_timeout_s=self.start_timeout_s,
        )

    def make_runtime(self) -> Runtime:
        if self.runtime == "local":
            if self.run_dir is None:
                raise ValueError("SYNOD_SUPERVISOR_RUNTIME=local needs SYNOD_SUPERVISOR_RUN_DIR")
            return LocalProcessRuntime(self.run_dir, start_timeout_s=self.start_timeout_s)
        if self.runtime == "kubernetes":
            return KubernetesRuntime.in_cluster(
                self.namespace, deployment_prefix=f"{self.release_fullname}-"
            )
        return NoRuntime()


class SupervisorService:
    def __init__(
        self,
        ctx: ServiceContext,
        config: core.SupervisorConfig,
        runtime: Runtime,
        clock: Any = time.time,
        tick_interval_s: float | None = None,
    ) -> None:
        # The core judges its own pauses by the interval it is told it ticks at.
        self.tick_interval_s = tick_interval_s or config.tick_interval_s
        self.ctx = ctx
        self.core = core.Supervisor(config)
        self.runtime = runtime
        self.clock = clock
        # Records in, core events out (shared with synod.sim).
        self.intake = intake.Intake(ctx.instance)
        self.pending: set[asyncio.Task[None]] = set()
        # Its consumer (set by `install`): its last answers are the core's ViewSeen.
        self.consumer: KeyOrderedConsumer | None = None
        self.reporting: asyncio.Task[None] | None = None  # the reachability report in flight
        self.withheld_logged: set[str] = set()

    # ------------------------------------------------------------ in

    def events(self, envelope: Envelope[Any], now: float) -> list[core.Event]:
        return self.intake.events(envelope, now)

    async def handle(self, msg: Received) -> None:
        now = self.clock()
        for event in self.events(msg.envelope, now):
            await self.carry_out(self.core.handle(event, now), now)
        self.log_withheld()

    async def tick(self) -> None:
        now = self.clock()
        last, stale = self.core.last_tick, self.core.view_stale
        if self.consumer is not None:
            answered = self.consumer.answered_at()
            VIEW_AGE.set(now - answered if answered is not None else math.inf)
            self.core.handle(core.ViewSeen(answered), now)
        await self.carry_out(self.core.tick(now), now)
        self.log_withheld()
        hold = self.core.config.wake_hold_s
        if self.core.view_stale and not stale:
            log.warning(
                "own view stale: no answer from the broker; judging nobody",
                extra={"view_at": self.core.view_at, "stale_s": self.core.config.view_stale_s},
            )
        if self.core.woke_at == now and self.core.woke_from == "view":
            log.warning(
                "own view back: judging nobody while the backlog is read", extra={"hold_s": hold}
            )
        elif self.core.woke_at == now and last is not None:
            log.warning(
                "own pause: judging nobody while the backlog is read",
                extra={"gap_s": round(now - last, 3), "hold_s": hold},
            )
        self.report_reachability(now)
        roles: dict[str, int] = {}
        threshold = self.core.config.phi_threshold
        for name, inst in self.core.instances.items():
            if inst.seq >= 0 and self.core.detector.phi(name, now) >= threshold:
                roles[inst.role] = roles.get(inst.role, 0) + 1
        for role in {i.role for i in self.core.instances.values()} | set(roles):
            SUSPECTS.labels(role).set(roles.get(role, 0))

    async def ticker(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.tick_interval_s)
                try:
                    await self.tick()
                except Exception as exc:  # a failed tick must not end the supervision
                    log.warning("tick failed", extra={"error": repr(exc)})
        finally:
            if self.reporting is not None:
                self.reporting.cancel()

    def log_withheld(self) -> None:
        """Say once when a quarantine is withheld (too few reviewers would be left)."""
        withheld = self.core.withheld
        for name in sorted(withheld.keys() - self.withheld_logged):
            log.warning(
                "quarantine withheld: too few reviewers would be left; tried again each tick",
                extra={
                    "target": name,
                    "reason": withheld[name],
                    "min_reviewers": self.core.config.min_reviewers,
                },
            )
        self.withheld_logged = set(withheld)

    # ------------------------------------------------------------ out

    def report_reachability(self, now: float) -> None:
        """`publish_reachability` in the background, one at a time: a report is a
        snapshot, so one still waiting for the broker is not queued behind."""
        if self.reporting is not None and not self.reporting.done():
            return
        self.reporting = asyncio.create_task(self._report(now))

    async def _report(self, now: float) -> None:
        try:
            await self.publish_reachability(now)
        except Exception as exc:
            log.info("reachability not published", extra={"error": repr(exc)})

    async def publish_reachability(self, now: float) -> None:
        """Who the detector hears, for consensus's `ap` ballots (docs/cap.md). Nothing
        while this supervisor hears nobody: cut off itself, it must not report the
        others gone (and could not publish it anyway)."""
        seen = self.core.reachability(now)
        if seen is None:
            return
        reachable, suspected = seen
        body = Reachability(observer=self.ctx.instance, reachable=reachable, suspected=suspected)
        envelope = Envelope.new(body, sender=self.ctx.sender)
        await self.ctx.publisher.publish(
            self.ctx.topic(HEARTBEATS), envelope, key=self.ctx.instance.encode()
        )

    async def carry_out(self, actions: list[core.Action], now: float) -> None:
        for action in actions:
            if isinstance(action, core.Restart):
                job = asyncio.create_task(self.restart(action))
                self.pending.add(job)
                job.add_done_callback(self.pending.discard)
            elif isinstance(action, core.Reassign):
                await self.reassign(action)
            elif isinstance(action, core.Escalate):
                await self.escalate(action)
            elif isinstance(action, core.Quarantine | core.Release):
                await self.notice(action)

    async def restart(self, action: core.Restart) -> None:
        try:
            host = self.intake.hosts.get(action.instance, "")
            pid = self.intake.pids.get(action.instance, 0)
            done = await self.runtime.restart(action.instance, action.role, host, pid)
            outcome = "ok"
        except Exception as exc:
            done, outcome = repr(exc), "error"
        RESTARTS.labels(action.role, action.reason, outcome).inc()
        log.warning(
            "restart",
            extra={
                "target": action.instance,
                "reason": action.reason,
                "phi": core.phi_is_finite(action.phi),
                "runtime": self.runtime.name,
                "outcome": outcome,
                "done": done,
            },
        )

    async def reassign(self, action: core.Reassign) -> None:
        await self.ctx.publish(TASK_EVENTS, intake.reassigned(action, self.ctx.sender))
        REASSIGNMENTS.labels(action.reason).inc()
        log.warning(
            "reassigned",
            extra={"task_id": action.task_id, "step_id": action.step_id, "reason": action.reason},
        )

    async def escalate(self, action: core.Escalate) -> None:
        await self.ctx.publish(TASK_EVENTS, intake.escalation(action, self.ctx.sender))
        ESCALATIONS.labels(action.reason).inc()
        log.warning(
            "escalation requested",
            extra={"task_id": action.task_id, "step_id": action.step_id, "reason": action.reason},
        )

    async def notice(self, action: core.Quarantine | core.Release) -> None:
        body = intake.notice(action)
        if isinstance(action, core.Quarantine):
            QUARANTINES.labels(action.role, action.reason).inc()
        else:
            RELEASES.labels(action.role).inc()
        await self.ctx.publish(SUPERVISOR, Envelope.new(body, sender=self.ctx.sender))
        log.warning(
            "quarantine" if body.active else "released",
            extra={"target": action.instance, "reason": action.reason},
        )


def install(ctx: ServiceContext, settings: SupervisorSettings | None = None) -> SupervisorService:
    settings = settings or SupervisorSettings()
    service = SupervisorService(
        ctx, settings.config(), settings.make_runtime(), tick_interval_s=settings.tick_interval_s
    )
    service.consumer = ctx.consume(
        GROUP,
        [HEARTBEATS, TASK_EVENTS, VOTES],
        service.handle,
        auto_offset_reset="latest",
    )
    ctx.background.append(service.ticker)
    return service
