"""Mutants of leaves clauses (LEAF-N, specs/leaves.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import warnings

import torch

from conformance.testlib.graphs import recorded_leaves
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


def _full_with_requires_grad_records_the_fill(mp):
    original = torch.full

    def full(*args, requires_grad=False, **kwargs):
        result = original(*args, **kwargs)
        if not requires_grad:
            return result
        return result.requires_grad_() * 1  # the fill recorded as an op: the user gets a non-leaf

    mp.setattr(torch, "full", full)


class _NodeView:
    """Stands for an autograd node as Python sees it, with one thing changed."""

    def __init__(self, node, *, name=None, keep_none_edges=True):
        object.__setattr__(self, "_node", node)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_keep_none_edges", keep_none_edges)

    def name(self):
        return self._name if self._name is not None else self._node.name()

    @property
    def next_functions(self):
        edges = self._node.next_functions
        return edges if self._keep_none_edges else tuple(edge for edge in edges if edge[0] is not None)

    def __getattr__(self, attribute):
        return getattr(self._node, attribute)


def _patch_grad_fn(mp, wrap):
    base = torch._C.TensorBase.grad_fn

    def get_grad_fn(self):
        node = base.__get__(self)
        return None if node is None else wrap(node)

    mp.setattr(torch.Tensor, "grad_fn", property(get_grad_fn))


def _grad_fn_name_is_qualified(mp):
    _patch_grad_fn(mp, lambda node: _NodeView(node, name=f"torch::autograd::{node.name()}"))


def _next_functions_omit_inputs_not_requiring_grad(mp):
    _patch_grad_fn(mp, lambda node: _NodeView(node, keep_none_edges=False))


def _float64_grad_reads_as_float32(mp):
    base_grad = torch._C.TensorBase.grad

    def get_grad(self):
        grad = base_grad.__get__(self)
        return grad.float() if grad is not None and grad.dtype == torch.float64 else grad

    mp.setattr(torch.Tensor, "grad", property(get_grad, base_grad.__set__, base_grad.__delete__))


def _retain_grad_without_requires_grad_is_silent(mp):
    original = torch.Tensor.retain_grad

    def retain_grad(self):
        if not self.requires_grad:
            return None
        return original(self)

    mp.setattr(torch.Tensor, "retain_grad", retain_grad)


def _create_graph_grad_is_detached(mp):
    original = torch.Tensor.backward

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        leaves = recorded_leaves(self) if create_graph else []
        result = original(self, gradient, retain_graph, create_graph, inputs)
        for leaf in leaves:
            if leaf.grad is not None:
                leaf.grad = leaf.grad.detach()
        return result

    mp.setattr(torch.Tensor, "backward", backward)


def _retained_grad_lost_after_in_place(mp):
    original = torch.Tensor.retain_grad
    base_grad = torch._C.TensorBase.grad

    def retain_grad(self):
        self._retained_at_version = self._version
        return original(self)

    def get_grad(self):
        retained_at = self.__dict__.get("_retained_at_version")
        if retained_at is not None and self._version != retained_at:
            return None  # the retains_grad hook stayed on the grad_fn from before the in-place change
        return base_grad.__get__(self)

    mp.setattr(torch.Tensor, "retain_grad", retain_grad)
    mp.setattr(torch.Tensor, "grad", property(get_grad, base_grad.__set__, base_grad.__delete__))


MUTANTS = (
    Mutant("retain_grad_is_a_no_op", ("LEAF-6",), "Tensor.retain_grad() does nothing", _retain_grad_is_a_no_op),
    Mutant("non_leaf_grad_read_is_silent", ("LEAF-5",), "reading .grad of a non-leaf does not warn", _non_leaf_grad_read_is_silent),
    Mutant("full_with_requires_grad_records_the_fill", ("LEAF-1",), "torch.full(..., requires_grad=True) returns a non-leaf (the fill recorded as an op)", _full_with_requires_grad_records_the_fill),
    Mutant("grad_fn_name_is_qualified", ("LEAF-2",), "grad_fn.name() gives the C++-qualified name (torch::autograd::AddBackward0), unlike the class name", _grad_fn_name_is_qualified),
    Mutant("next_functions_omit_inputs_not_requiring_grad", ("LEAF-3",), "grad_fn.next_functions leaves out the entries of inputs that do not require grad instead of None", _next_functions_omit_inputs_not_requiring_grad),
    Mutant("float64_grad_reads_as_float32", ("LEAF-4",), "the .grad of a float64 leaf reads back as float32", _float64_grad_reads_as_float32),
    Mutant("retain_grad_without_requires_grad_is_silent", ("LEAF-7",), "retain_grad() on a tensor that does not require grad does nothing instead of raising", _retain_grad_without_requires_grad_is_silent),
    Mutant("create_graph_grad_is_detached", ("LEAF-8",), "Tensor.backward(create_graph=True) stores a detached .grad (no grad_fn, does not require grad)", _create_graph_grad_is_detached),
    Mutant(
        "retained_grad_lost_after_in_place",
        ("LEAF-6",),
        "a non-leaf that called retain_grad() and is then changed in place (itself or through a view) gets no .grad "
        "from backward (torch 2.0-2.2: the retains_grad hook was not moved to the new grad_fn for in-place over a "
        "view; fixed by pytorch/pytorch#117552 for 2.3)",
        _retained_grad_lost_after_in_place,
        regression="https://github.com/pytorch/pytorch/issues/117366",
    ),
)
