"""What every Synod service process shares: wiring, heartbeats, health, logs."""
