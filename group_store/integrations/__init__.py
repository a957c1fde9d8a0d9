"""Adapters that put agent frameworks' persistence interfaces on group_store (each an optional extra)."""
