"""The HTML trajectory viewer (eval's viewer.html, infer --html): above the loop, whose parser splits a turn for display."""
