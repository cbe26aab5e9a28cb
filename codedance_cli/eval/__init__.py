"""`codedance eval`."""
