from synod.agents.reviewer import setup_reviewer
from synod.service.runtime import service_main

service_main(
    "reviewer",
    setup_reviewer,
    "Synod reviewer: votes on the rounds the consensus service addresses to this "
    "instance (SYNOD_INSTANCE is its voter id, e.g. reviewer-0).",
)
