"""`codedance sft`."""
