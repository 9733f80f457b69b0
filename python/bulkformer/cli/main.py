"""Entry point: assembles the command modules into one typer app."""
from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="bulkformer",
    help="BulkFormer: a foundation model of human bulk RNA-seq.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Command modules; each defines register(app). Listed here so the CLI stays one place.
COMMAND_MODULES = [
    "bulkformer.cli.model_commands",
    "bulkformer.cli.task_commands",
    "bulkformer.cli.inference_commands",
    "bulkformer.cli.training_commands",
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


class UserError(Exception):
    """An error caused by the user's input: printed without a traceback."""


def main() -> None:
    try:
        app()
    except (ValueError, FileNotFoundError, UserError) as err:
        typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
        sys.exit(2)
