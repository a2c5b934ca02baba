"""Causal order (vector clocks, hybrid logical clock, causal buffer); may import wire, errors.

Imports only the standard library (and nothing above synod.core): time is an
input, every function is pure or a small state machine. The adapters that put
these clocks on envelopes and hold messages for their causes live in
synod.transport.causal and synod.service.host.
"""

from synod.core.ordering.book import ClockBook, Stamp
from synod.core.ordering.buffer import CausalBuffer, Release
from synod.core.ordering.hlc import HLC, HLCReading, pack, unpack
from synod.core.ordering.vclock import Order, VClock, compare, dominates, increment, merge

__all__ = [
    "HLC",
    "CausalBuffer",
    "ClockBook",
    "HLCReading",
    "Order",
    "Release",
    "Stamp",
    "VClock",
    "compare",
    "dominates",
    "increment",
    "merge",
    "pack",
    "unpack",
]
