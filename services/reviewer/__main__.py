"""`python -m synod_services.reviewer`; the service is synod.roles.reviewer."""

from synod.roles.reviewer.main import main

main()
