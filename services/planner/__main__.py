"""`python -m synod_services.planner`; the service is synod.roles.planner."""

from synod.roles.planner.main import main

main()
