"""Synod: teams of LLM agents over Kafka; each folder is a layer, imports flow down.

The layers and their import rules: docs/architecture.md (checked by `make lint`).
"""

__version__ = "0.1.0"
