"""Errors that say which argument was wrong, what it was given and what to do.

Front ends (the command line, the R package) read these fields instead of parsing
message text, so a reworded message cannot break them. Each class also derives from
the builtin exception it stands for, so ``except ValueError`` keeps working, and
``str(err)`` is the message Python users read: ``problem``, then ``fix``.
"""
from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ArgumentError", "ArgumentTypeError", "BulkformerError", "BulkformerWarning", "GeneColumnError",
           "GeneMatchError", "InputError", "MissingPathError", "call", "describe"]

# The argument that names the gene-ID column: genes= in prepare and the readers,
# gene_names= where genes= means a gene subset (impute, embed, the tasks, ...). Errors
# about that column name it by this one key, whatever the caller called it.
GENE_COLUMN = "gene_names"


class _Fields:
    """The fields shared by errors and warnings.

    ``argument``: the Python argument at fault, ``None`` when the data themselves are;
    ``value``: what that argument was given; ``fix``: what to do, in words;
    ``suggestion``: argument -> value that would do it, for a front end to render in
    its own syntax (``gene.column = "gene_id"`` in R, ``--gene-column gene_id`` on the
    command line); ``problem`` and ``joiner``: the message is ``problem + joiner + fix``.
    """

    def _set_fields(self, problem: str, argument: str | None, value: Any, fix: str | None,
                    suggestion: Mapping[str, Any] | None, joiner: str) -> str:
        self.problem = problem
        self.argument = argument
        self.value = value
        self.fix = fix
        self.suggestion = dict(suggestion or {})
        self.joiner = joiner
        return problem if fix is None else f"{problem}{joiner}{fix}"


class BulkformerError(_Fields, Exception):
    """Base class; see the module docstring and :class:`_Fields` for the fields."""

    def __init__(self, problem: str, *, argument: str | None = None, value: Any = None, fix: str | None = None,
                 suggestion: Mapping[str, Any] | None = None, joiner: str = ": ") -> None:
        # only the message goes to args: a pickled copy (a worker process's) rebuilds from it
        super().__init__(self._set_fields(problem, argument, value, fix, suggestion, joiner))


class ArgumentError(BulkformerError, ValueError):
    """An argument has a value that cannot work (out of range, unknown name, ...)."""


class ArgumentTypeError(BulkformerError, TypeError):
    """An argument is of a type that is not accepted."""


class GeneColumnError(ArgumentError):
    """The gene-ID column named by ``genes=`` / ``gene_names=`` is missing or holds no IDs
    (``argument`` is :data:`GENE_COLUMN`)."""


class InputError(BulkformerError, ValueError):
    """The data cannot be used as they are (IDs, values, sample names, lengths)."""


class GeneMatchError(InputError):
    """Too few of the data's genes match the model vocabulary."""


class MissingPathError(BulkformerError, FileNotFoundError):
    """A path that has to exist does not."""


class BulkformerWarning(_Fields, UserWarning):
    """A warning with the same fields as :class:`BulkformerError`."""

    def __init__(self, problem: str, *, argument: str | None = None, value: Any = None, fix: str | None = None,
                 suggestion: Mapping[str, Any] | None = None, joiner: str = ": ") -> None:
        super().__init__(self._set_fields(problem, argument, value, fix, suggestion, joiner))


def describe(err: BaseException) -> dict[str, Any]:
    """A front end's view of any exception or warning: its class names (most derived
    first, builtins included), the message, the traceback, and the fields (``None``
    where the exception has none)."""
    fields = {name: getattr(err, name, None) for name in ("problem", "argument", "value", "fix", "joiner")}
    fields["suggestion"] = dict(getattr(err, "suggestion", None) or {})
    return {
        "classes": [cls.__name__ for cls in type(err).__mro__ if cls not in (object, BaseException)],
        "message": str(err),
        "traceback": "".join(traceback.format_exception(type(err), err, err.__traceback__)),
        **fields,
    }


def call(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> tuple[bool, Any]:
    """``(True, result)`` of ``function(*args, **kwargs)``, or ``(False, describe(err))``
    when it raises. For front ends whose bridge keeps only an exception's text
    (reticulate 1.28). A keyword the function does not take is an :class:`ArgumentError`
    naming it, checked before the call."""
    try:
        _check_keywords(function, kwargs)
        return True, function(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - handed to the front end whole
        return False, describe(err)


def _check_keywords(function: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = [name for name in kwargs if name not in parameters]
    if unknown:
        raise ArgumentError(f"unknown argument {unknown[0]!r}", argument=unknown[0], value=kwargs[unknown[0]],
                            fix="see the function's help page for its arguments", joiner="; ")
