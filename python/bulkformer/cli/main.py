"""Entry point: assembles the command modules into one typer app."""
from __future__ import annotations

import errno
import importlib
import os
import re
import signal
import sys
import warnings
from collections.abc import Sequence

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

# typer's rich help shows a value type for every option, flags too (`--help <bool>`,
# `--progress --no-progress <bool>`), which reads as if they took a value: they take none
# (a typer internal: left alone where a typer version lacks it, the help only looks odd)
_option_type = getattr(typer.core.TyperOption, "display_type_rich", None)
if _option_type is not None:
    typer.core.TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else _option_type(self, ctx)


class UserError(Exception):
    """An error caused by the user's input: printed without a traceback."""


# name='value', name=number or name=True/False, as the library's messages spell their advice
_PYTHON_ARGUMENT = re.compile(r"\b([a-z][a-z0-9_]*)=(?:'([^']*)'|(-?[0-9][0-9.e+-]*)|(True|False)\b)")
# a bare argument name with an underscore (n_splits, mask_fraction): never an English word,
# nor a file name (gene_features.safetensors)
_PYTHON_NAME = re.compile(r"(?<![\w.-])([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?![\w(]|\.\w)")
# an argument named with no value (omit layer=, out of lengths=, (orientation=))
_PYTHON_KEYWORD = re.compile(r"\b([a-z][a-z0-9_]*)=(?=[\s,.;:)]|$)")

# library arguments whose option has another name in the commands that have that option
_ALIASES = {
    "n_splits": "folds", "n_estimators": "trees", "n_repeats": "repeats",
    "time_col": "time_column", "event_col": "event_column", "cell_col": "cell_column", "drug_col": "drug_column",
    "value_col": "value_column", "vocabulary": "model", "gene_names": "gene_column", "genes": "gene_column",
}
# the library names its gene-ID column argument both ways (bulkformer.io.gene_column_argument:
# genes='X' (gene_names='X' in impute, ...)); on the command line both are --gene-column, and
# --genes of embed and gene-survival is a gene subset, so the pair is read as gene_names='X'
_GENE_COLUMN_ARGUMENT = re.compile(r"\bgenes=((?:'[^']*')?) \(gene_names=\1 in [^)]*\)")

# the command being run (set by main): its own options name the advice, aliases included
_invoked: list[str] = []


def _command_path(args: Sequence[str]) -> list[str]:
    """The (sub)command names at the start of a command line, e.g. ['evaluate', 'classification']."""
    command, path = typer.main.get_command(app), []
    for arg in args:
        sub = getattr(command, "commands", {}).get(arg)
        if sub is None:
            break
        command, path = sub, [*path, arg]
    return path


def _flags(path: Sequence[str]) -> dict[str, str]:
    """Python parameter name -> long option: every command's, then (overriding) those of
    the command at ``path`` with the library's names for them (n_splits -> --folds)."""
    root = typer.main.get_command(app)
    flags: dict[str, str] = {}

    def long_options(command) -> dict[str, str]:
        options = {param.name: long[0] for param in command.params
                   if (long := [opt for opt in param.opts if opt.startswith("--")])}
        # name=False of an on/off flag is its --no-... form (under the key "name=False")
        options.update({f"{param.name}=False": off[0] for param in command.params
                        if getattr(param, "is_flag", False)
                        and (off := [opt for opt in param.secondary_opts if opt.startswith("--")])})
        return options

    def collect(command) -> None:
        for sub in getattr(command, "commands", {}).values():
            for name, option in long_options(sub).items():
                flags.setdefault(name, option)
            collect(sub)

    collect(root)
    command = root
    for name in path:
        command = getattr(command, "commands", {}).get(name)
        if command is None:
            return flags
    own = long_options(command)
    flags.update(own)
    flags.update({library: own[target] for library, target in _ALIASES.items() if target in own and library not in own})
    return flags


def as_cli_advice(message: str, command: Sequence[str] | None = None) -> str:
    """Library messages name Python arguments (orientation='genes_by_samples', n_splits);
    on the command line the same advice names the flag (--orientation genes_by_samples,
    --folds in ``evaluate classification``). ``command``: the (sub)command path whose
    options to use; default: the one being run."""
    flags = _flags(_invoked if command is None else command)

    def flag(match: re.Match) -> str:
        name, value = match.group(1), match.group(2) if match.group(2) is not None else match.group(3)
        if match.group(4) == "False":  # progress=False -> --no-progress
            return flags.get(f"{name}=False", match.group(0))
        if name not in flags:
            return match.group(0)
        return flags[name] if match.group(4) else f"{flags[name]} {value}"  # resume=True -> --resume

    def bare(match: re.Match) -> str:
        return flags.get(match.group(1), match.group(0))

    message = _GENE_COLUMN_ARGUMENT.sub(r"gene_names=\1", message)
    return _PYTHON_NAME.sub(bare, _PYTHON_KEYWORD.sub(bare, _PYTHON_ARGUMENT.sub(flag, message)))


def _plain_warning(message, category, filename, lineno, line=None) -> str:
    # a person at a terminal needs the advice in the warning, not our source line
    return f"warning: {as_cli_advice(str(message))}\n"


def _terminated(signum: int, frame) -> None:
    # SIGTERM (a scheduler's stop, torchrun ending its workers) as an ordinary exit, so
    # that half-written outputs are removed as they are on Ctrl-C
    sys.exit(128 + signum)


# a traceback reaches the user only when asked for: `--debug` anywhere on the command
# line, or this variable set (to anything but 0), e.g. for a whole pipeline
DEBUG_FLAG = "--debug"
DEBUG_ENV = "BULKFORMER_DEBUG"


def _take_debug_flag(argv: list[str]) -> bool:
    """Whether tracebacks are wanted; removes ``--debug`` from ``argv`` (no command has it)."""
    wanted = DEBUG_FLAG in argv[1:] or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")
    argv[1:] = [arg for arg in argv[1:] if arg != DEBUG_FLAG]
    return wanted


def _fail(message: str, debug: bool, code: int = 2) -> None:
    """One line on stderr (the traceback before it with --debug), then exit ``code``."""
    if debug:
        import traceback

        traceback.print_exc()
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    sys.exit(code)


def _no_space_advice(filename: str | None) -> str:
    """Disk-full advice for the output being written: a gene store's own levers, or none."""
    where = f" writing {filename}" if filename else ""
    if filename and ".zarr" in str(filename):
        return (f"no space left on the device{where}: free space or write the output elsewhere (a gene-level store "
                "holds samples x genes x features values, 4 bytes each; --dtype float16 halves it, --genes keeps "
                "fewer genes)")
    return f"no space left on the device{where}: free space, or write the output to another disk"


def _internal(err: BaseException, debug: bool) -> None:
    """An error no check anticipated: exit 1 (not a usage error), the traceback on request."""
    if debug:
        raise err
    text = str(err).splitlines()[0] if str(err) else ""
    _fail(f"unexpected {type(err).__name__}{f': {text}' if text else ''} (rerun with {DEBUG_FLAG}, or "
          f"{DEBUG_ENV}=1, for the traceback, and please report it)", False, code=1)


def main() -> None:
    debug = _take_debug_flag(sys.argv)
    # restored on the way out: a caller running the command in its own process (tests,
    # notebooks) keeps Python's wording for its own warnings afterwards
    previous_format, warnings.formatwarning = warnings.formatwarning, _plain_warning
    _invoked[:] = _command_path(sys.argv[1:])
    from bulkformer.errors import BulkformerError
    from bulkformer.safe_load import UnsafeCheckpointError

    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        app()
    except (BulkformerError, ValueError, FileNotFoundError, UserError, UnsafeCheckpointError) as err:
        _fail(as_cli_advice(str(err)), debug)
    except (PermissionError, FileExistsError, NotADirectoryError, IsADirectoryError) as err:
        # paths that turned unusable during the run (checked ones fail before it)
        _fail(f"cannot write {err.filename}: {err.strerror}", debug)
    except OSError as err:
        if err.errno != errno.ENOSPC:
            _internal(err, debug)
        _fail(_no_space_advice(err.filename), debug)
    except MemoryError:
        _fail("out of memory: lower --batch-size, or process the samples in parts", debug)
    except Exception as err:  # noqa: BLE001 - a bug of ours: one line unless --debug
        _internal(err, debug)
    finally:
        signal.signal(signal.SIGTERM, previous)
        warnings.formatwarning = previous_format
