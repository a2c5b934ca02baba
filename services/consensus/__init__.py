"""The consensus service: folds synod.votes with the consensus core, publishes decisions.

See README.md in this folder and docs/adr/0003-consensus-service-log-replay.md.
"""
