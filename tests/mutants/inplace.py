"""Mutants of inplace clauses (INPLACE-N, specs/inplace.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

from tests.mutants.base import Mutant


def _add_on_leaf_allowed(mp):
    original = torch.Tensor.add_

    def add_(self, *args, **kwargs):
        if self.is_leaf and self.requires_grad:
            with torch.no_grad():  # the missing check: the write goes through unrecorded
                return original(self, *args, **kwargs)
        return original(self, *args, **kwargs)

    mp.setattr(torch.Tensor, "add_", add_)


def _mul_bypasses_autograd(mp):
    original = torch.Tensor.mul_

    def mul_(self, *args, **kwargs):
        if self.requires_grad and not self.is_leaf:
            original(self.data, *args, **kwargs)  # neither recorded nor versioned
            return self
        return original(self, *args, **kwargs)

    mp.setattr(torch.Tensor, "mul_", mul_)


MUTANTS = (
    Mutant("add_on_leaf_allowed", ("INPLACE-1",), "Tensor.add_() on a leaf that requires grad writes instead of raising", _add_on_leaf_allowed),
    Mutant("mul_bypasses_autograd", ("INPLACE-4", "INPLACE-7"), "Tensor.mul_() on a non-leaf is neither recorded nor versioned", _mul_bypasses_autograd),
)
