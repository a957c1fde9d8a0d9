"""The on-disk format, pure: key encoding, the codec, expiry arithmetic, file names and
table schemas. No module here performs I/O (tests/test_layers.py keeps it so)."""
