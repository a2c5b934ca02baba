"""Sans-I/O fault-tolerance cores: circuit breaker, retry backoff, failure detector."""
