"""The store's logic over a ``Storage``: entries, expiry, sweep, inventory and tables.
Backend-neutral: it reaches files only through the storage seam."""
