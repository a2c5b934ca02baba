"""The planner service: orchestrates each task from its own log."""
