"""`python -m synod_services.supervisor`; the service is synod.roles.supervisor."""

from synod.roles.supervisor.main import main

main()
