"""`codedance infer`: one question against a model, shown turn by turn (cli.py, run.py)."""
