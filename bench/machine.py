"""What a benchmark ran on: cores, CPU model, memory, load, Python, Kafka, library versions.

Every bench/*.py puts `machine_info()` in its report under "machine" and
prints `describe()` above its table, so a number always says where it came
from (CONVENTIONS.md: each benchmark states the machine and the versions).
The scripts import it as `from machine import ...`: bench/ is not a package,
and Python puts a script's own folder first on sys.path.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from synod import __version__ as synod_version

# The libraries whose speed a benchmark may measure, by distribution name.
LIBRARIES = (
    "aiokafka",
    "aiohttp",
    "anthropic",
    "openai",
    "fastavro",
    "pydantic",
    "opentelemetry-sdk",
)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def memory_gb() -> float | None:
    """Physical memory in GiB, or None where the system does not say."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * page_size / 2**30, 1) if pages > 0 and page_size > 0 else None


def library_versions() -> dict[str, str | None]:
    """The installed version of each of LIBRARIES (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def load_average() -> float | None:
    """The 1-minute load average: on a shared machine it says how much else ran."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far, from /proc (None if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_info(kafka: str | None = None) -> dict[str, Any]:
    """The report's "machine" document; `kafka` is the broker's version, if one ran."""
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gb": memory_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "synod": synod_version,
        "kafka": kafka,
        "libraries": library_versions(),
        "load_avg_1m": load_average(),
    }


def describe(machine: dict[str, Any]) -> str:
    """One line for the top of a human table."""
    memory = f", {machine['memory_gb']:g} GiB" if machine.get("memory_gb") else ""
    kafka = f", Kafka {machine['kafka']}" if machine.get("kafka") else ""
    return (
        f"machine: {machine['cores']} cores, {machine['cpu']}{memory}; "
        f"Python {machine['python']}, synod {machine['synod']}{kafka}"
    )
