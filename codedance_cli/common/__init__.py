"""Plumbing every package shares: atomic files, bounded concurrency, progress bars.

A leaf below all others: it imports nothing else from codedance_cli, so any package may import it.
"""
