"""Activation checkpointing (``torch.utils.checkpoint``): the call forms the CKPT clauses' tests use.

``checkpoint`` and ``checkpoint_sequential`` are looked up on ``torch.utils.checkpoint`` at each call, never
imported by name, so a patched torch (a mutant, a vendor's wrapper) is the one the tests exercise.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.utils.checkpoint  # noqa: F401 - the submodule, looked up at each call

__all__ = ["VARIANTS", "checkpointed", "checkpointed_sequential", "squares_of_every_step"]

#: The two implementations, by the keyword that selects them.
VARIANTS = {"use_reentrant=True": True, "use_reentrant=False": False}


def checkpointed(function: Callable, *args, use_reentrant: bool | None, **kwargs):
    """``torch.utils.checkpoint.checkpoint(function, *args, use_reentrant=..., **kwargs)``; ``use_reentrant=None``
    leaves the argument out (the call whose default the CKPT-10/11 clauses state)."""
    if use_reentrant is None:
        return torch.utils.checkpoint.checkpoint(function, *args, **kwargs)
    return torch.utils.checkpoint.checkpoint(function, *args, use_reentrant=use_reentrant, **kwargs)


def checkpointed_sequential(functions, segments: int, input: torch.Tensor, *, use_reentrant: bool | None, **kwargs):
    """``torch.utils.checkpoint.checkpoint_sequential(functions, segments, input, use_reentrant=...)``."""
    if use_reentrant is None:
        return torch.utils.checkpoint.checkpoint_sequential(functions, segments, input, **kwargs)
    return torch.utils.checkpoint.checkpoint_sequential(functions, segments, input, use_reentrant=use_reentrant, **kwargs)


def squares_of_every_step(program: Callable[..., tuple]) -> Callable[..., torch.Tensor]:
    """A scalar function of the leaves: the sum of the squares of every step's output of ``program`` (a
    ``Graph.program``).  It depends on step 0 (which consumes a leaf that requires grad in a recording graph),
    and ``pow`` saves every step's output for backward, so the gradient needs the recomputed values."""

    def loss(*leaves):
        return sum((step.pow(2).sum() for step in program(*leaves)), torch.zeros((), dtype=leaves[0].dtype, device=leaves[0].device))

    return loss
