"""Role logic of the agent services: what each role does with a message."""
