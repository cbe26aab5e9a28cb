"""`codedance rl`."""
