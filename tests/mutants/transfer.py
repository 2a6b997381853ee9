"""Mutants of transfer clauses (XFER-N, specs/transfer.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

from tests.mutants.base import Mutant


def _numpy_ignores_requires_grad(mp):
    original = torch.Tensor.numpy
    mp.setattr(torch.Tensor, "numpy", lambda self, *a, **k: original(self.detach(), *a, **k))


def _to_always_copies(mp):
    original = torch.Tensor.to
    mp.setattr(torch.Tensor, "to", lambda self, *a, **k: (lambda r: r.clone() if r is self else r)(original(self, *a, **k)))


def _item_returns_float_for_integers(mp):
    original = torch.Tensor.item

    def item(self):
        value = original(self)
        return float(value) if type(value) is int else value

    mp.setattr(torch.Tensor, "item", item)


def _item_of_many_elements_returns_the_first(mp):
    original = torch.Tensor.item
    mp.setattr(torch.Tensor, "item", lambda self: original(self.reshape(-1)[0]) if self.numel() > 1 else original(self))


MUTANTS = (
    Mutant("numpy_ignores_requires_grad", ("XFER-5",), "Tensor.numpy() silently detaches a tensor that requires grad", _numpy_ignores_requires_grad),
    Mutant("to_always_copies", ("XFER-3",), "Tensor.to() copies even when nothing changes", _to_always_copies),
    Mutant("item_returns_float_for_integers", ("XFER-9",), "Tensor.item() of an integer tensor returns a float", _item_returns_float_for_integers),
    Mutant("item_of_many_elements_returns_the_first", ("XFER-11",), "Tensor.item() of a tensor with several elements returns the first instead of raising", _item_of_many_elements_returns_the_first),
)
