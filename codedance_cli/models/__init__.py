"""What a checkpoint folder holds and how to read it: the Qwen image processor, the pixel budget it was trained at."""
