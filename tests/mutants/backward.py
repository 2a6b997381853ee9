"""Mutants of backward clauses (BWD-N, specs/backward.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

from conformance.testlib.graphs import recorded_leaves
from tests.mutants.base import Mutant


def _backward_always_retains_graph(mp):
    original = torch.Tensor.backward

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        return original(self, gradient, True, create_graph, inputs)

    mp.setattr(torch.Tensor, "backward", backward)


def _backward_ignores_inputs(mp):
    original = torch.Tensor.backward

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        return original(self, gradient, retain_graph, create_graph)

    mp.setattr(torch.Tensor, "backward", backward)


def _as_list(tensors) -> list[torch.Tensor]:
    return [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)


def _backward_inputs_overwrite_existing_grads(mp):
    original = torch.autograd.backward

    def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, grad_variables=None, inputs=None):
        for tensor in _as_list(inputs or ()):
            tensor.grad = None  # the listed inputs' gradients replace what they held
        return original(tensors, grad_tensors, retain_graph, create_graph, grad_variables, inputs=inputs)

    mp.setattr(torch.autograd, "backward", backward)


def _backward_inputs_zero_the_other_grads(mp):
    original = torch.autograd.backward

    def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, grad_variables=None, inputs=None):
        listed = _as_list(inputs or ())
        if listed:
            for leaf in (leaf for root in _as_list(tensors) for leaf in recorded_leaves(root)):
                if leaf.grad is not None and not any(leaf is t for t in listed):
                    leaf.grad.zero_()  # as if the unlisted leaves had been given a zero gradient
        return original(tensors, grad_tensors, retain_graph, create_graph, grad_variables, inputs=inputs)

    mp.setattr(torch.autograd, "backward", backward)


def _backward_method_ignores_retain_graph(mp):
    original = torch.Tensor.backward

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        return original(self, gradient, create_graph, create_graph, inputs)  # retain_graph= dropped: its default

    mp.setattr(torch.Tensor, "backward", backward)


def _grad_create_graph_frees_the_graph(mp):
    original = torch.autograd.grad

    def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, *args, **kwargs):
        if retain_graph is None:
            retain_graph = False  # no longer defaults to create_graph
        return original(outputs, inputs, grad_outputs, retain_graph, create_graph, *args, **kwargs)

    mp.setattr(torch.autograd, "grad", grad)


def _backward_marks_every_graph_consumed(mp):
    original = torch.Tensor.backward

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        if self.__dict__.get("_graph_consumed"):
            raise RuntimeError("Trying to backward through the graph a second time; specify retain_graph=True")
        result = original(self, gradient, retain_graph, create_graph, inputs)
        if not (retain_graph or create_graph):
            self._graph_consumed = True  # even when the graph saved nothing
        return result

    mp.setattr(torch.Tensor, "backward", backward)


def _non_scalar_backward_seeds_ones(mp):
    original = torch.Tensor.backward

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        if gradient is None and self.numel() > 1:
            gradient = torch.ones_like(self)  # as if the output had been summed
        return original(self, gradient, retain_graph, create_graph, inputs)

    mp.setattr(torch.Tensor, "backward", backward)


def _backward_gradient_argument_ignored(mp):
    original = torch.Tensor.backward

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        if gradient is not None:
            gradient = torch.ones_like(gradient)
        return original(self, gradient, retain_graph, create_graph, inputs)

    mp.setattr(torch.Tensor, "backward", backward)


def _backward_inputs_skip_non_leaves_changed_in_place(mp):
    """pytorch#79708: backward(inputs=[p]) left .grad of a non-leaf p unset once p had been changed in place."""
    original = torch.Tensor.backward

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        result = original(self, gradient, retain_graph, create_graph, inputs)
        for tensor in _as_list(inputs) if inputs is not None else ():
            if not tensor.is_leaf and tensor._version > 0:
                tensor.grad = None
        return result

    mp.setattr(torch.Tensor, "backward", backward)


MUTANTS = (
    Mutant("backward_always_retains_graph", ("BWD-1", "SAVED-5"), "Tensor.backward() never frees the graph", _backward_always_retains_graph),
    Mutant("backward_ignores_inputs", ("BWD-7",), "Tensor.backward(inputs=...) fills every leaf's .grad", _backward_ignores_inputs),
    Mutant(
        "backward_inputs_skip_non_leaves_changed_in_place",
        ("BWD-7",),
        "Tensor.backward(inputs=[p]) leaves .grad of a non-leaf p unset once p was changed in place (torch 1.10-1.12: the in-place op gave p a new grad_fn the engine did not capture)",
        _backward_inputs_skip_non_leaves_changed_in_place,
        regression="https://github.com/pytorch/pytorch/issues/79708",
    ),
    Mutant(
        "backward_inputs_overwrite_existing_grads",
        ("BWD-7",),
        "backward(inputs=[...]) replaces the listed tensors' existing .grad instead of accumulating into it",
        _backward_inputs_overwrite_existing_grads,
    ),
    Mutant(
        "backward_inputs_zero_the_other_grads",
        ("BWD-7",),
        "backward(inputs=[...]) zeroes the existing .grad of the leaves it was not given",
        _backward_inputs_zero_the_other_grads,
    ),
    Mutant(
        "backward_method_ignores_retain_graph",
        ("BWD-2",),
        "Tensor.backward(retain_graph=True) frees the graph anyway (the functional forms still keep it)",
        _backward_method_ignores_retain_graph,
    ),
    Mutant("grad_create_graph_frees_the_graph", ("BWD-3",), "torch.autograd.grad(create_graph=True) without retain_graph frees the graph (retain_graph no longer defaults to create_graph)", _grad_create_graph_frees_the_graph),
    Mutant("backward_marks_every_graph_consumed", ("BWD-4",), "a second Tensor.backward() through a graph raises even when the graph saved no tensors", _backward_marks_every_graph_consumed),
    Mutant("non_scalar_backward_seeds_ones", ("BWD-5",), "backward() of a non-scalar output without gradient= seeds ones instead of raising", _non_scalar_backward_seeds_ones),
    Mutant("backward_gradient_argument_ignored", ("BWD-6",), "Tensor.backward(gradient=v) seeds ones instead of v", _backward_gradient_argument_ignored),
)
