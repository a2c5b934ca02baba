"""`synod team run`: a project's steps as one task through the Kafka services."""
