"""Mutants of requires grad clauses (REQGRAD-N, specs/requires_grad.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

from tests.mutants.base import Mutant


def _zeros_requires_grad_by_default(mp):
    original = torch.zeros

    def zeros(*args, **kwargs):
        dtype = kwargs.get("dtype") or torch.get_default_dtype()
        if "requires_grad" not in kwargs and (dtype.is_floating_point or dtype.is_complex):
            kwargs["requires_grad"] = True
        return original(*args, **kwargs)

    mp.setattr(torch, "zeros", zeros)


def _parameter_not_trainable_by_default(mp):
    original_new = torch.nn.Parameter.__new__

    def new(cls, data=None, requires_grad=False):
        return original_new(cls, data, requires_grad)

    mp.setattr(torch.nn.Parameter, "__new__", new)


def _sin_drops_requires_grad(mp):
    original = torch.sin
    mp.setattr(torch, "sin", lambda t, *a, **k: original(t.detach(), *a, **k))
    mp.setattr(torch.Tensor, "sin", lambda self, *a, **k: original(self.detach(), *a, **k))


def _requires_grad_method_accepts_integers(mp):
    original = torch.Tensor.requires_grad_

    def requires_grad_(self, requires_grad=True):
        if not (self.dtype.is_floating_point or self.dtype.is_complex):
            return self  # silently ignore instead of raising
        return original(self, requires_grad)

    mp.setattr(torch.Tensor, "requires_grad_", requires_grad_)


def _module_requires_grad_false_ignored(mp):
    original = torch.nn.Module.requires_grad_

    def requires_grad_(self, requires_grad=True):
        return self if not requires_grad else original(self, requires_grad)

    mp.setattr(torch.nn.Module, "requires_grad_", requires_grad_)


MUTANTS = (
    Mutant("zeros_requires_grad_by_default", ("REQGRAD-1",), "torch.zeros(...) requires grad unless told otherwise", _zeros_requires_grad_by_default),
    Mutant("parameter_not_trainable_by_default", ("REQGRAD-4", "REQGRAD-5"), "nn.Parameter defaults to requires_grad=False", _parameter_not_trainable_by_default),
    Mutant("sin_drops_requires_grad", ("REQGRAD-6",), "torch.sin / Tensor.sin detach their input", _sin_drops_requires_grad),
    Mutant("requires_grad_method_accepts_integers", ("REQGRAD-8",), "Tensor.requires_grad_() silently ignores integer tensors", _requires_grad_method_accepts_integers),
    Mutant("module_requires_grad_false_ignored", ("REQGRAD-7", "SAVED-4"), "Module.requires_grad_(False) leaves the parameters trainable", _module_requires_grad_false_ignored),
)
