"""Whole-store tools over a store's engine: verify and format, diff, export and import,
snapshots, migrations. Their public names are re-exported by ``group_store``."""
