"""The consensus core: quorum voting with ballots; may import cores, wire, errors, ids.

Events and time go in, decisions come out; no I/O, no clock, no global random.
The consensus service wraps `Consensus` with Kafka; tests and offline checks
use `replay`. See docs/consensus.md.
"""

from synod.core.consensus.events import (
    BallotEndReason,
    Decided,
    EquivocationDetected,
    Event,
    IgnoreReason,
    LogEvent,
    NewBallot,
    Open,
    Output,
    Reachable,
    Reconciled,
    RequestVotes,
    Tick,
    VoteIgnored,
    VoteReceived,
)
from synod.core.consensus.machine import ProposalMachine, replay
from synod.core.consensus.policies import (
    Adaptive,
    ConfidenceWeighted,
    Majority,
    Policy,
    Supermajority,
    TallyView,
    Unanimity,
)
from synod.core.consensus.router import Consensus
from synod.core.consensus.types import (
    NO_QUORUM,
    REJECTED,
    Candidate,
    Decision,
    InvalidProposal,
    Mode,
    Proposal,
    Vote,
    VoteKind,
    decision_id_for,
)

__all__ = [
    "NO_QUORUM",
    "REJECTED",
    "Adaptive",
    "BallotEndReason",
    "Candidate",
    "ConfidenceWeighted",
    "Consensus",
    "Decided",
    "Decision",
    "EquivocationDetected",
    "Event",
    "IgnoreReason",
    "InvalidProposal",
    "LogEvent",
    "Majority",
    "Mode",
    "NewBallot",
    "Open",
    "Output",
    "Policy",
    "Proposal",
    "ProposalMachine",
    "Reachable",
    "Reconciled",
    "RequestVotes",
    "Supermajority",
    "TallyView",
    "Tick",
    "Unanimity",
    "Vote",
    "VoteIgnored",
    "VoteKind",
    "VoteReceived",
    "decision_id_for",
    "replay",
]
