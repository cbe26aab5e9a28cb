"""The `codedance` command: finds recipes and launches stages; all work lives in the stage packages."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from codedance_cli import __version__
from codedance_cli.data_commands import app as data_app
from codedance_cli.doctor import command as doctor_command
from codedance_cli.errors import CodedanceError
from codedance_cli.eval.cli import command as eval_command
from codedance_cli.filter.cli import command as filter_command
from codedance_cli.infer.cli import command as infer_command
from codedance_cli.judge.cli import app as judge_app
from codedance_cli.recipe_commands import app as recipe_app
from codedance_cli.rl.cli import command as rl_command
from codedance_cli.sandbox_commands import app as sandbox_app
from codedance_cli.sft.cli import command as sft_command
from codedance_cli.synth.cli import command as synth_command

app = typer.Typer(
    name="codedance",
    help="CodeDance: build thinking-with-code vision-language models — synth, filter, sft, rl, judge, eval, infer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command("synth")(synth_command)
app.command("filter")(filter_command)
app.command("sft")(sft_command)
app.command("rl")(rl_command)
app.add_typer(judge_app, name="judge")
app.command("eval")(eval_command)
app.command("infer")(infer_command)
app.add_typer(recipe_app, name="recipe")
app.command("doctor")(doctor_command)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(data_app, name="data")




@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    """Console-script entry: CodedanceError -> one red line on stderr and its exit code."""
    try:
        app()
    except CodedanceError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        Console(stderr=True).print("[yellow]interrupted[/]")
        sys.exit(130)
