"""`python -m synod_services.consensus`; the service is synod.roles.consensus."""

from synod.roles.consensus.main import main

main()
