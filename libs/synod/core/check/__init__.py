"""The oracle behind `synod check` over a whole log; may import cores, wire, errors.

Pure: it takes records already read (topic, partition, offset, envelope) and
returns a report; imports synod.wire and other synod.core modules only. The
reader that fetches the log is synod.transport.logread; the command is
synod.cli.check.
"""

from synod.core.check.oracle import KINDS, LogRecord, Report, Violation, check

__all__ = ["KINDS", "LogRecord", "Report", "Violation", "check"]
