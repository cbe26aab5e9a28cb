"""`codedance synth`."""
