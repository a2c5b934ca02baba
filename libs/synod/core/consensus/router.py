"""Many proposals at once: route events to their machines, remember decisions.

`Consensus` is what the consensus service drives. It keeps one
`ProposalMachine` per open proposal and only the `Decision` of a closed one,
so a proposal is decided once even if its Open or votes are delivered again
(at-least-once delivery): they get the stored decision back. Its state is a
function of the ordered log of `LogEvent`s, so a restarted instance rebuilds
it with `Consensus.from_log`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from synod.core.consensus.events import (
    Decided,
    LogEvent,
    Open,
    Output,
    Reachable,
    Tick,
    VoteIgnored,
    VoteReceived,
)
from synod.core.consensus.machine import ProposalMachine
from synod.core.consensus.types import Decision


class Consensus:
    def __init__(self) -> None:
        self._open: dict[str, ProposalMachine] = {}
        self._decided: dict[str, Decision] = {}

    @classmethod
    def from_log(cls, events: Iterable[LogEvent]) -> Consensus:
        """Rebuild the state reached by `events` (their outputs were acted on before)."""
        consensus = cls()
        for event in events:
            consensus.step(event)
        return consensus

    @property
    def open_proposals(self) -> tuple[str, ...]:
        return tuple(self._open)

    @property
    def decisions(self) -> Mapping[str, Decision]:
        return MappingProxyType(self._decided)

    def decision(self, proposal_id: str) -> Decision | None:
        return self._decided.get(proposal_id)

    def step(self, event: LogEvent) -> list[Output]:
        if isinstance(event, Open):
            return self._on_open(event)
        if isinstance(event, VoteReceived):
            return self._on_vote(event)
        return self._broadcast(event)

    def _on_open(self, event: Open) -> list[Output]:
        proposal_id = event.proposal.proposal_id
        decided = self._decided.get(proposal_id)
        if decided is not None:
            return [Decided(decided)]
        if proposal_id in self._open:
            return []  # the first Open wins; a re-delivery changes nothing
        machine, outputs = ProposalMachine.open(event.proposal)
        self._keep(proposal_id, machine)
        return outputs

    def _on_vote(self, event: VoteReceived) -> list[Output]:
        proposal_id = event.vote.proposal_id
        decided = self._decided.get(proposal_id)
        if decided is not None:
            return [Decided(decided)]
        machine = self._open.get(proposal_id)
        if machine is None:
            return [VoteIgnored(event.vote, "unknown_proposal")]
        outputs = machine.step(event)
        self._keep(proposal_id, machine)
        return outputs

    def _broadcast(self, event: Tick | Reachable) -> list[Output]:
        outputs: list[Output] = []
        for proposal_id, machine in list(self._open.items()):
            outputs.extend(machine.step(event))
            self._keep(proposal_id, machine)
        return outputs

    def _keep(self, proposal_id: str, machine: ProposalMachine) -> None:
        if machine.decision is None:
            self._open[proposal_id] = machine
        else:
            self._open.pop(proposal_id, None)
            self._decided[proposal_id] = machine.decision
