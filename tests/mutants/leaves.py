"""Mutants of leaves clauses (LEAF-N, specs/leaves.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import warnings

import torch

from tests.mutants.base import Mutant


def _retain_grad_is_a_no_op(mp):
    mp.setattr(torch.Tensor, "retain_grad", lambda self: None)


def _non_leaf_grad_read_is_silent(mp):
    base_grad = torch._C.TensorBase.grad

    def get_grad(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return base_grad.__get__(self)

    mp.setattr(torch.Tensor, "grad", property(get_grad, base_grad.__set__, base_grad.__delete__))


MUTANTS = (
    Mutant("retain_grad_is_a_no_op", ("LEAF-6",), "Tensor.retain_grad() does nothing", _retain_grad_is_a_no_op),
    Mutant("non_leaf_grad_read_is_silent", ("LEAF-5",), "reading .grad of a non-leaf does not warn", _non_leaf_grad_read_is_silent),
)
