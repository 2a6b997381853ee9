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


# ----------------------------------------------------------------------------- BWD-8..12 (issue 17)


def _grad_allow_unused_defaults_to_true(mp):
    original = torch.autograd.grad

    def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True, allow_unused=None, **kwargs):
        return original(outputs, inputs, grad_outputs, retain_graph, create_graph, only_inputs, True if allow_unused is None else allow_unused, **kwargs)

    mp.setattr(torch.autograd, "grad", grad)


def _grad_materialize_grads_ignored(mp):
    original = torch.autograd.grad

    def grad(*args, materialize_grads=False, **kwargs):
        if materialize_grads:
            if kwargs.get("allow_unused") is False:
                raise ValueError("Expected allow_unused to be True or not passed when materialize_grads=True")
            kwargs["allow_unused"] = True  # but the unused inputs' gradients stay None
        return original(*args, **kwargs)

    mp.setattr(torch.autograd, "grad", grad)


def _grad_batched_sums_the_batch(mp):
    original = torch.autograd.grad

    def grad(outputs, inputs, grad_outputs=None, *args, is_grads_batched=False, **kwargs):
        if not is_grads_batched:
            return original(outputs, inputs, grad_outputs, *args, **kwargs)
        vectors = [grad_outputs] if isinstance(grad_outputs, torch.Tensor) else list(grad_outputs)
        batch = vectors[0].shape[0]
        single = original(outputs, inputs, [v.sum(0) for v in vectors], *args, **kwargs)  # one product with the rows' sum
        return tuple(None if g is None else g.unsqueeze(0).expand(batch, *g.shape) / batch for g in single)

    mp.setattr(torch.autograd, "grad", grad)


def _backward_without_a_graph_is_a_no_op(mp):
    original = torch.autograd.backward

    def backward(tensors, *args, **kwargs):
        if not any(t.requires_grad for t in _as_list(tensors)):
            return None  # nothing to do, silently
        return original(tensors, *args, **kwargs)

    mp.setattr(torch.autograd, "backward", backward)


def _backward_of_several_tensors_uses_the_first(mp):
    original = torch.autograd.backward

    def backward(tensors, grad_tensors=None, *args, **kwargs):
        if not isinstance(tensors, torch.Tensor) and len(tensors) > 1:
            tensors = tensors[:1]
            grad_tensors = None if grad_tensors is None or isinstance(grad_tensors, torch.Tensor) else grad_tensors[:1]
        return original(tensors, grad_tensors, *args, **kwargs)

    mp.setattr(torch.autograd, "backward", backward)


MUTANTS += (
    Mutant("grad_allow_unused_defaults_to_true", ("BWD-8",), "torch.autograd.grad without allow_unused returns None for an unused input instead of raising", _grad_allow_unused_defaults_to_true),
    Mutant("grad_materialize_grads_ignored", ("BWD-9",), "torch.autograd.grad(materialize_grads=True) returns None, not zeros, for unused inputs", _grad_materialize_grads_ignored),
    Mutant("grad_batched_sums_the_batch", ("BWD-10",), "torch.autograd.grad(is_grads_batched=True) computes one product with the sum of the batch's vectors and spreads it over the rows", _grad_batched_sums_the_batch),
    Mutant("backward_without_a_graph_is_a_no_op", ("BWD-11",), "backward() / torch.autograd.backward of tensors none of which requires grad returns silently instead of raising", _backward_without_a_graph_is_a_no_op),
    Mutant("backward_of_several_tensors_uses_the_first", ("BWD-12",), "torch.autograd.backward of a sequence of tensors backpropagates only the first (and its gradient)", _backward_of_several_tensors_uses_the_first),
)
