"""Mutants of detach clauses (DETACH-N, specs/detach.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

from tests.mutants.base import Mutant


def _detach_copies(mp):
    original = torch.Tensor.detach
    mp.setattr(torch.Tensor, "detach", lambda self: original(self).clone())


def _data_is_tracked(mp):
    base_data = torch._C.TensorBase.data

    def set_data(self, value):
        base_data.__set__(self, value)

    # .data now returns detach(): shares the version counter, so changes are caught
    mp.setattr(torch.Tensor, "data", property(lambda self: self.detach(), set_data))


def _detach_in_place_allowed_on_views_not_requiring_grad(mp):
    original = torch.Tensor.detach_

    def detach_(self):
        if self._base is not None and not self._base.requires_grad:
            return self  # the view check only runs for bases that require grad
        return original(self)

    mp.setattr(torch.Tensor, "detach_", detach_)



def _detach_keeps_requires_grad(mp):
    original = torch.Tensor.detach
    mp.setattr(torch.Tensor, "detach", lambda self: original(self).requires_grad_(self.requires_grad))


def _data_assignment_drops_requires_grad(mp):
    base_data = torch._C.TensorBase.data

    def set_data(self, value):
        base_data.__set__(self, value)
        self.requires_grad_(False)  # the parameter stops training

    mp.setattr(torch.Tensor, "data", property(lambda self: base_data.__get__(self), set_data))



def _detach_in_place_leaves_non_leaves_attached(mp):
    original = torch.Tensor.detach_

    def detach_(self):
        if self.requires_grad and not self.is_leaf and self._base is None:
            return self  # the side effect is dropped: self still requires grad, with its grad_fn
        return original(self)

    mp.setattr(torch.Tensor, "detach_", detach_)


MUTANTS = (
    Mutant("detach_copies", ("DETACH-1", "DETACH-3"), "Tensor.detach() returns a copy instead of sharing storage", _detach_copies),
    Mutant("data_is_tracked", ("DETACH-4",), "Tensor.data behaves like detach(): in-place changes are tracked", _data_is_tracked),
    Mutant(
        "detach_in_place_allowed_on_views_not_requiring_grad",
        ("DETACH-5",),
        "Tensor.detach_() on a view of a tensor that does not require grad returns it silently instead of raising",
        _detach_in_place_allowed_on_views_not_requiring_grad,
    ),
    Mutant("detach_keeps_requires_grad", ("DETACH-2",), "Tensor.detach() of a tensor that requires grad returns a leaf that still requires grad", _detach_keeps_requires_grad),
    Mutant("data_assignment_drops_requires_grad", ("DETACH-6",), "`param.data = tensor` leaves the parameter with requires_grad=False", _data_assignment_drops_requires_grad),
    Mutant(
        "detach_in_place_leaves_non_leaves_attached",
        ("DETACH-5",),
        "y.detach_() on a non-leaf returns y still requiring grad, with its grad_fn (the symptom seen under torch.compile, reported in 2026)",
        _detach_in_place_leaves_non_leaves_attached,
        regression="https://github.com/pytorch/pytorch/issues/176854",
    ),
)
