"""The supervisor: a sans-I/O core that watches heartbeats and task logs and
decides restarts, reassignments and quarantines, plus the runtimes that carry
out restarts (local processes, Kubernetes)."""
