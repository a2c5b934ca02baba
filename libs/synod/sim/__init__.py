"""The seeded whole-system simulation; may import service, adapters, cores, wire (not roles).

`simulate(SimConfig(seed=N))` runs every role's core logic over an in-memory
model of Kafka in virtual time, with the faults of `synod.sim.faults`, and
checks the log with the `synod check` oracle plus liveness. `synod.sim.sweep`
runs many seeds and shrinks a failing one. docs/simulation.md says what is
modelled and what is not.
"""

from synod.sim.faults import FAULTS, FaultError, FaultPlan, parse_faults
from synod.sim.world import SimConfig, SimResult, World, simulate

__all__ = [
    "FAULTS",
    "FaultError",
    "FaultPlan",
    "SimConfig",
    "SimResult",
    "World",
    "parse_faults",
    "simulate",
]
