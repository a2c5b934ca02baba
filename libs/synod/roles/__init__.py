"""One adapter package per service role, plus shared metrics; may import service and below."""
