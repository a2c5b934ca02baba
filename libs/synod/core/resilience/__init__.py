"""Fault-tolerance cores: breaker, backoff, detector, retry tiers; imports cores, wire, errors."""
