"""CodeDance: a toolkit for thinking-with-code vision-language models."""

__version__ = "0.1.0"
