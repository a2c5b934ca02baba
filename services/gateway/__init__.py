"""The HTTP gateway: tasks in over HTTP, task status and live event streams out."""
