"""The researcher and coder services; may import service and below, no other role."""
