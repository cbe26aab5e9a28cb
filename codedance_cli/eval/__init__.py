"""`codedance eval`: benchmarks in their public formats through the tool loop, resumable, with reports.

`run.py` is the stage's flow; `benchmarks/` the registry (one module per benchmark: loader + official scoring);
`generate.py` runs samples (tool loop or direct), `samples.py` logs them, `scoring.py` turns the log into numbers,
`report.py`, `plots.py` and `viewer.py` write what people read.
"""
