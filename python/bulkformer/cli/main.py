"""Entry point: assembles the command modules into one typer app."""
from __future__ import annotations

import importlib
import re
import sys
import warnings

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


# name='value' or name=number, as the library's messages spell their advice
_PYTHON_ARGUMENT = re.compile(r"\b([a-z][a-z0-9_]*)=(?:'([^']*)'|([0-9][0-9.e+-]*))")


def as_cli_advice(message: str) -> str:
    """Library messages name Python arguments (orientation='genes_by_samples'); on the
    command line the same advice names the flag (--orientation genes_by_samples)."""
    command = typer.main.get_command(app)
    flags = {param.name: opt for sub in getattr(command, "commands", {}).values() for param in sub.params
             for opt in param.opts if opt.startswith("--")}

    def flag(match: re.Match) -> str:
        name, value = match.group(1), match.group(2) if match.group(2) is not None else match.group(3)
        return f"{flags[name]} {value}" if name in flags else match.group(0)

    return _PYTHON_ARGUMENT.sub(flag, message)


def _plain_warning(message, category, filename, lineno, line=None) -> str:
    # a person at a terminal needs the advice in the warning, not our source line
    return f"warning: {as_cli_advice(str(message))}\n"


def main() -> None:
    warnings.formatwarning = _plain_warning
    try:
        app()
    except (ValueError, FileNotFoundError, UserError) as err:
        typer.secho(f"error: {as_cli_advice(str(err))}", err=True, fg=typer.colors.RED)
        sys.exit(2)
