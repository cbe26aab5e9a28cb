"""`codedance data`: import public datasets, export for the engines."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from codedance_cli.errors import BadInput

if TYPE_CHECKING:
    from codedance_cli.data.importer import ImportReport

app = typer.Typer(help="Import public datasets into the trajectory format; export for ms-swift and verl.", no_args_is_help=True)


def _column_overrides(columns: list[str] | None) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in columns or []:
        field, sep, name = item.partition("=")
        if not sep or not field or not name:
            raise BadInput(f"--column {item!r}: expected FIELD=COLUMN, e.g. --column question=query")
        overrides[field.strip()] = name.strip()
    return overrides


@app.command("import")
def import_(
    source: Annotated[str, typer.Argument(help="Local file/folder (parquet, jsonl, json, csv, tsv) or a hub id owner/name.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Trajectory folder to write (resumes if it exists).")],
    format: Annotated[str, typer.Option("--format", "-f", help="auto, codedance-sft, codedance-rl, vqa or trajectory.")] = "auto",
    split: Annotated[str, typer.Option(help="Split, for a hub id.")] = "train",
    column: Annotated[list[str] | None, typer.Option("--column", "-c", help="VQA column mapping FIELD=COLUMN (id, image, question, answer, choices, answer_type).")] = None,
    limit: Annotated[int | None, typer.Option(help="Read at most this many rows.")] = None,
    prefix: Annotated[str | None, typer.Option(help="Task-id prefix for VQA rows (default: the source's name).")] = None,
    json: Annotated[bool, typer.Option("--json", help="Machine-readable summary on stdout.")] = False,
) -> None:
    """Read CodeDance-SFT / CodeDance-RL / plain VQA data into the trajectory format; bad rows are reported, never dropped silently."""
    from rich.markup import escape

    from codedance_cli.common.progress import progress_bar
    from codedance_cli.common.tables import count_table
    from codedance_cli.console import make_console
    from codedance_cli.data.importer import ERRORS_FILE, import_dataset

    console = make_console(stderr=json)
    with progress_bar("import", console) as progress:
        bar = progress.add_task(escape(str(source)), total=limit)
        report = import_dataset(source, output, format, split=split, column_overrides=_column_overrides(column), limit=limit,
                                prefix=prefix, on_progress=lambda n: progress.advance(bar, n))
    if json:
        typer.echo(jsonlib.dumps(report.as_dict(), indent=2))
        _fail_if_nothing_imported(report, source)
        return
    rows: list[tuple[str, object]] = [("rows read", report.rows), ("[green]imported[/]", report.imported),
                                      ("already in output", report.already_done),
                                      ("[red]bad rows (skipped)[/]" if report.errors else "bad rows", report.errors)]
    rows += [(f"  {kind}", count) for kind, count in report.reasons.most_common()]
    table = count_table(f"import {source} ({report.format}) -> {output}", rows)
    console.print(table)
    for example in report.examples[:10]:  # soft wrap: a piped reason is never cut or broken at 80 columns
        console.print(f"[red]row {example['index']}[/]: {example['reason']}", highlight=False, soft_wrap=True)
    if report.errors:
        console.print(f"all {report.errors} bad rows with their reasons: {output / ERRORS_FILE}", soft_wrap=True)
    _fail_if_nothing_imported(report, source)


def _fail_if_nothing_imported(report: ImportReport, source: Path) -> None:
    """An import that produced no trajectory is a failed command, whatever the reason."""
    if report.imported == 0 and report.already_done == 0:
        raise BadInput(f"{source}: no row imported ({report.rows} read, {report.errors} bad)")


@app.command("export")
def export(
    trajectories: Annotated[Path, typer.Argument(help="Trajectory folder (or .parquet file).")],
    to: Annotated[str, typer.Option("--to", help="swift (ms-swift jsonl + images) or verl (verl RL parquet).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="swift: output folder; verl: output .parquet file.")],
    json: Annotated[bool, typer.Option("--json", help="Print the written path as JSON.")] = False,
) -> None:
    """Write ms-swift jsonl or verl parquet from trajectories."""
    from codedance_cli.errors import BadInput

    if to == "swift":
        from codedance_cli.data.export_swift import export_swift  # the SFT stage's exporter

        written = export_swift(trajectories, out)
    elif to == "verl":
        from codedance_cli.data.export_verl import export_verl  # the RL stage's exporter

        written = export_verl(trajectories, out)
    else:
        raise BadInput(f"--to {to!r}: expected swift or verl")
    typer.echo(jsonlib.dumps({"to": to, "path": str(written)}) if json else f"wrote {written}")


@app.command("view")
def view(
    trajectories: Annotated[Path, typer.Argument(help="Trajectory folder (or .parquet file).")],
    html: Annotated[Path, typer.Option("--html", help="The page to write (one self-contained HTML file).")],
    limit: Annotated[int, typer.Option(help="Show at most this many trajectories.")] = 32,
    json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Write the trajectory viewer for a dataset: every turn, its code, printed output and the images the code made."""
    from itertools import islice

    from codedance_cli.trajectory.store import check_dataset, iter_trajectories
    from codedance_cli.viewer.html import write_html

    check_dataset(trajectories)
    shown = list(islice(iter_trajectories(trajectories), max(limit, 0)))
    labels = [_correct_label(item.metadata) for item in shown]
    written = write_html(html, shown, labels, title=f"{trajectories.name}: {len(shown)} trajectories")
    images = sum(len(turn.observation.images) for item in shown for turn in item.turns if turn.observation is not None)
    if json:
        typer.echo(jsonlib.dumps({"path": str(written), "trajectories": len(shown), "output_images": images}))
    else:
        typer.echo(f"wrote {written} ({len(shown)} trajectories, {images} images made by their code)")


def _correct_label(metadata: dict | None) -> str | None:
    correct = (metadata or {}).get("correct")
    return None if correct is None else ("correct" if correct else "wrong")
