"""`codedance filter`."""
