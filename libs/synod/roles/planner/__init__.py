"""The planner service, each task's orchestrator; may import service and below, no other role."""
