"""Mutants of saved tensors clauses (SAVED-N, specs/saved_tensors.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

from tests.mutants.base import Mutant


def _saved_tensors_hooks_ignored(mp):
    class SavedTensorsHooks(torch.autograd.graph.saved_tensors_hooks):
        def __enter__(self):
            pass

        def __exit__(self, *exc):
            pass

    mp.setattr(torch.autograd.graph, "saved_tensors_hooks", SavedTensorsHooks)


MUTANTS = (
    Mutant("saved_tensors_hooks_ignored", ("SAVED-1", "SAVED-6"), "saved_tensors_hooks installs no hooks: operations save tensors without calling pack", _saved_tensors_hooks_ignored),
)
