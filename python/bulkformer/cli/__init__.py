"""The ``bulkformer`` command line (typer). Each command group lives in its own module
and registers itself on :data:`app` in :mod:`bulkformer.cli.main`."""
from .main import app, main

__all__ = ["app", "main"]
