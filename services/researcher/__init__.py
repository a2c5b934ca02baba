"""The researcher service: does researcher steps with the model."""
