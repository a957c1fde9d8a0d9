"""Adapters that put other frameworks' persistence interfaces on group_store (each an optional extra)."""
