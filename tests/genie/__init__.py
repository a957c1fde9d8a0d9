"""Group Genie 0.0.2 and 0.0.4 datastore modules, vendored (Apache-2.0) to write genie stores in tests."""
