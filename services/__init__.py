"""Synod's deployable services, one package per role: `python -m synod_services.<role>`."""
