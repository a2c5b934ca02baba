"""The consensus service, the vote log's fold; may import service and below, no other role."""
