"""Adapters that let agent frameworks keep their state in a group_store."""
