"""`python -m synod_services.reviewer`: a reviewer (juror) service process."""

from __future__ import annotations

from synod.roles.reviewer.service import setup_reviewer
from synod.service.host import service_main


def main() -> None:
    service_main(
        "reviewer",
        setup_reviewer,
        "Synod reviewer: votes on the rounds the consensus service addresses to this "
        "instance (SYNOD_INSTANCE is its voter id, e.g. reviewer-0).",
    )
