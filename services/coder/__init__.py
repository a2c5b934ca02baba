"""The coder service: does coder steps with the model."""
