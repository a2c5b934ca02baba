"""`python -m synod_services.gateway`; the service is synod.roles.gateway."""

from synod.roles.gateway.main import main

main()
