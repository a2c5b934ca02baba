"""`python -m synod_services.researcher`; the service is synod.roles.worker."""

from synod.roles.worker.main import main

main("researcher")
