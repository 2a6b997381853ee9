"""Mutants of backward clauses (BWD-N, specs/backward.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

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


MUTANTS = (
    Mutant("backward_always_retains_graph", ("BWD-1", "SAVED-5"), "Tensor.backward() never frees the graph", _backward_always_retains_graph),
    Mutant("backward_ignores_inputs", ("BWD-7",), "Tensor.backward(inputs=...) fills every leaf's .grad", _backward_ignores_inputs),
)
