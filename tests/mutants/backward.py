"""Mutants of backward clauses (BWD-N, specs/backward.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

from conformance.graphs import recorded_leaves
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


MUTANTS = (
    Mutant("backward_always_retains_graph", ("BWD-1", "SAVED-5"), "Tensor.backward() never frees the graph", _backward_always_retains_graph),
    Mutant("backward_ignores_inputs", ("BWD-7",), "Tensor.backward(inputs=...) fills every leaf's .grad", _backward_ignores_inputs),
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
)
