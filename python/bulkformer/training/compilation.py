"""``torch.compile`` for the training forward pass.

Two things would break the compiled graph into pieces that run eagerly: the sparse
gene graph (compile cannot take sparse tensors; the model keeps it as CSR parts behind a
registered op, see model.graph_conv) and performer-pytorch's per-call check whether to
redraw its random features (a branch on a tensor). The check is made here, eagerly,
before each compiled call, exactly as each Performer would make it at the start of its
own forward, so the redraw schedule is the eager one.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from performer_pytorch import Performer

from ..model import BulkFormer


def check_compilable(device: torch.device) -> None:
    """On CPU, torch.compile builds C++ kernels: without a compiler it would fail at the
    first step with a long traceback, so say so before any data are read."""
    if device.type != "cpu":
        return
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except ImportError:  # another torch layout: let torch.compile speak for itself
        return
    except Exception as error:  # noqa: BLE001 - torch raises various types for a missing compiler
        raise RuntimeError(f"compile=True on CPU needs a C++ compiler, and none was found ({error}); install one "
                           "(apt-get install g++) or train without compile") from None


@contextmanager
def compiled_forward(module: torch.nn.Module, net: BulkFormer) -> Iterator[Callable[..., Any]]:
    """Yield a compiled ``module(...)`` (``module``: ``net`` or its DDP wrapper). Numbers
    match the eager forward to float rounding, not bit for bit. Inside, the Performers'
    own redraw check is off; it is restored on exit."""
    adjacency = net.graph_adjacency()  # build the CSR graph eagerly, once: not something to trace
    if adjacency is not None:
        # graphs differ in their number of edges: with it symbolic, one compiled graph serves
        # every model of the same shape (cross-validation folds compile once; the guard on the
        # edge list's size still retraces, a second or two, without compiling again)
        for part in adjacency.parts[1:] + adjacency.transpose_parts[1:]:
            torch._dynamo.mark_dynamic(part, 0)
    performers = [m for m in net.modules() if isinstance(m, Performer)]
    automatic = [p.auto_check_redraw for p in performers]
    compiled = torch.compile(module)

    def forward(*args: Any, **kwargs: Any) -> Any:
        for performer, auto in zip(performers, automatic):
            if auto:
                performer.proj_updater.redraw_projections()
        return compiled(*args, **kwargs)

    for performer in performers:
        performer.auto_check_redraw = False
    try:
        yield forward
    finally:
        for performer, auto in zip(performers, automatic):
            performer.auto_check_redraw = auto
