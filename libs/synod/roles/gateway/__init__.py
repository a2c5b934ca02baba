"""The HTTP gateway service; may import service and below, no other role."""
