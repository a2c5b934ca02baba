"""Synod: teams of LLM agents run as a distributed system over Apache Kafka."""

__version__ = "0.1.0"
