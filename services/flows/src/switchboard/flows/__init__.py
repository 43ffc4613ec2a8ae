"""Flows: bot scenarios over the bus (versioned documents, durable exactly-once runs)."""
