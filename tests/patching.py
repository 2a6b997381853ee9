"""What the mutant and slowdown plugins share: patching torch for one pytest run, and undoing it."""

from __future__ import annotations

from typing import Callable

import pytest
import torch

_ACTIVE = pytest.StashKey[pytest.MonkeyPatch]()


def patch_everywhere(mp: pytest.MonkeyPatch, name: str, value) -> None:
    """Replace a grad-mode class wherever torch exports it."""
    for module in (torch, torch.autograd, torch.autograd.grad_mode):
        if hasattr(module, name):
            mp.setattr(module, name, value)


def apply_for_the_run(config: pytest.Config, apply: Callable[[pytest.MonkeyPatch], None]) -> None:
    """Apply a patch when pytest configures the run (not at import); :func:`undo_after_the_run` undoes it."""
    patch = pytest.MonkeyPatch()
    apply(patch)
    config.stash[_ACTIVE] = patch


def undo_after_the_run(config: pytest.Config) -> None:
    patch = config.stash.get(_ACTIVE, None)
    if patch is not None:
        patch.undo()
