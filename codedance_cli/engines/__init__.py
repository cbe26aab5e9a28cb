"""Shims that plug into the engines' documented extension points, shared by several stages (a leaf)."""
