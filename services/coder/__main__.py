"""`python -m synod_services.coder`; the service is synod.roles.worker."""

from synod.roles.worker.main import main

main("coder")
