"""The one service host (wiring, heartbeats, health, logs); may import adapters and below."""
