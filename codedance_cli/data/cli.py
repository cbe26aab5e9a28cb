"""`codedance data`: import public datasets, export for the engines."""

from __future__ import annotations

import typer

app = typer.Typer(help="Import public datasets into the trajectory format; export for ms-swift and verl.", no_args_is_help=True)


@app.command("import")
def import_() -> None:
    """Read CodeDance-SFT / CodeDance-RL / VQA data into the trajectory format."""
    from codedance_cli.errors import StageNotBuilt

    raise StageNotBuilt("codedance data import is not built yet (issue #5)")


@app.command("export")
def export() -> None:
    """Write ms-swift jsonl or verl parquet from trajectories."""
    from codedance_cli.errors import StageNotBuilt

    raise StageNotBuilt("codedance data export is not built yet (issue #5)")
