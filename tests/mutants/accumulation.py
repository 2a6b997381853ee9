"""Mutants of accumulation clauses (ACCUM-N, specs/accumulation.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

from conformance.testlib.graphs import recorded_leaves
from tests.mutants.base import Mutant


def _backward_overwrites_grad(mp):
    original = torch.Tensor.backward

    def backward(self, *args, **kwargs):
        for leaf in recorded_leaves(self):
            leaf.grad = None  # overwrite instead of accumulate
        return original(self, *args, **kwargs)

    mp.setattr(torch.Tensor, "backward", backward)


def _zero_grad_default_keeps_zeros(mp):
    for owner in (torch.optim.Optimizer, torch.nn.Module):
        original = owner.zero_grad

        def zero_grad(self, set_to_none=False, _original=original):
            return _original(self, set_to_none=set_to_none)

        mp.setattr(owner, "zero_grad", zero_grad)


def _roots(tensors) -> list[torch.Tensor]:
    return [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)


def _conv_weight_grads_overwritten_when_significant(mp):
    original = torch.autograd.backward

    def backward(tensors, *args, **kwargs):
        for root in _roots(tensors):
            for leaf in recorded_leaves(root):
                grad = leaf.grad
                if leaf.dim() == 4 and grad is not None and grad.numel() and float(grad.abs().max()) > 1e-4:
                    leaf.grad = None  # the new gradient replaces the old one instead of adding to it
        return original(tensors, *args, **kwargs)

    mp.setattr(torch.autograd, "backward", backward)


def _equal_fresh_grads_share_one_buffer(mp):
    original = torch.autograd.backward

    def backward(tensors, *args, **kwargs):
        fresh = [leaf for root in _roots(tensors) for leaf in recorded_leaves(root) if leaf.grad is None]
        result = original(tensors, *args, **kwargs)
        owners: list[torch.Tensor] = []
        for leaf in fresh:
            grad = leaf.grad
            if grad is None or grad.dim() == 0:
                continue
            same = next((g for g in owners if g.shape == grad.shape and g.dtype == grad.dtype and torch.equal(g, grad)), None)
            if same is None:
                owners.append(grad)
            else:
                leaf.grad = same  # AccumulateGrad "steals" one incoming buffer for two leaves
        return result

    mp.setattr(torch.autograd, "backward", backward)


def _zero_grad_keeping_tensors_makes_default_zeros(mp):
    for owner in (torch.optim.Optimizer, torch.nn.Module):
        original = owner.zero_grad

        def zero_grad(self, set_to_none=True, _original=original):
            _original(self, set_to_none=set_to_none)
            if not set_to_none:
                params = self.parameters() if isinstance(self, torch.nn.Module) else (p for group in self.param_groups for p in group["params"])
                for param in params:
                    if param.grad is not None:
                        param.grad.data = torch.zeros(param.shape)  # default dtype and device, not the parameter's

        mp.setattr(owner, "zero_grad", zero_grad)


def _new_parameters_start_with_zero_grad(mp):
    original = torch.nn.Parameter.__new__

    def __new__(cls, data=None, requires_grad=True):
        param = original(cls, data, requires_grad)
        if param.requires_grad:
            param.grad = torch.zeros_like(param)
        return param

    mp.setattr(torch.nn.Parameter, "__new__", staticmethod(__new__))


def _paths_into_a_leaf_are_averaged(mp):
    original = torch.Tensor.backward

    def backward(self, *args, **kwargs):
        edges: dict[int, int] = {}
        seen, stack = set(), [self.grad_fn]
        while stack:  # count the edges into each leaf's accumulation node
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            for child, _ in node.next_functions:
                if child is not None and hasattr(child, "variable"):
                    edges[id(child.variable)] = edges.get(id(child.variable), 0) + 1
                stack.append(child)
        leaves = recorded_leaves(self)
        before = [None if leaf.grad is None else leaf.grad.clone() for leaf in leaves]
        result = original(self, *args, **kwargs)
        with torch.no_grad():
            for leaf, old in zip(leaves, before):
                paths = edges.get(id(leaf), 1)
                if paths > 1 and leaf.grad is not None:
                    new = leaf.grad - (0 if old is None else old)
                    leaf.grad.copy_(new / paths + (0 if old is None else old))  # the mean of the paths, not their sum
        return result

    mp.setattr(torch.Tensor, "backward", backward)


_DEFAULT = object()


def _explicit_set_to_none_keeps_zeros_on_modules(mp):
    original = torch.nn.Module.zero_grad

    def zero_grad(self, set_to_none=_DEFAULT):
        if set_to_none is _DEFAULT:
            return original(self)
        return original(self, set_to_none=False)  # the explicit argument is lost

    mp.setattr(torch.nn.Module, "zero_grad", zero_grad)


def _set_to_none_leaves_a_stale_accumulator(mp):
    for owner in (torch.optim.Optimizer, torch.nn.Module):
        original = owner.zero_grad

        def zero_grad(self, set_to_none=True, _original=original):
            params = list(self.parameters()) if isinstance(self, torch.nn.Module) else [p for group in self.param_groups for p in group["params"]]
            stale = {id(p): p.grad for p in params if p.grad is not None}
            _original(self, set_to_none=set_to_none)
            if set_to_none:
                for param in params:
                    if id(param) in stale:
                        param._stale_grad_buffer = stale[id(param)]

        mp.setattr(owner, "zero_grad", zero_grad)

    backward = torch.autograd.backward

    def backward_adding_stale(tensors, *args, **kwargs):
        result = backward(tensors, *args, **kwargs)
        for leaf in (leaf for root in _roots(tensors) for leaf in recorded_leaves(root)):
            stale = leaf.__dict__.pop("_stale_grad_buffer", None)
            if stale is not None and leaf.grad is not None:
                with torch.no_grad():
                    leaf.grad.add_(stale)  # the next backward adds into the old buffer
        return result

    mp.setattr(torch.autograd, "backward", backward_adding_stale)


def _autograd_grad_accumulates_into_grad(mp):
    original = torch.autograd.grad

    def grad(outputs, inputs, *args, **kwargs):
        result = original(outputs, inputs, *args, **kwargs)
        listed = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
        with torch.no_grad():
            for tensor, value in zip(listed, result):
                if value is not None and tensor.is_leaf:
                    tensor.grad = value.clone() if tensor.grad is None else tensor.grad + value
        return result

    mp.setattr(torch.autograd, "grad", grad)


MUTANTS = (
    Mutant("backward_overwrites_grad", ("ACCUM-2", "ACCUM-9"), "Tensor.backward() overwrites .grad instead of accumulating", _backward_overwrites_grad),
    Mutant("zero_grad_default_keeps_zeros", ("ACCUM-6",), "zero_grad() defaults to set_to_none=False (the pre-2.0 default)", _zero_grad_default_keeps_zeros),
    Mutant(
        "conv_weight_grads_overwritten_when_significant",
        ("ACCUM-9",),
        "backward() overwrites instead of accumulating into the .grad of 4-d leaves (conv weights) whose gradient is "
        "not negligible (|g| > 1e-4); near-zero gradients, such as the seed network's convolution gradients at "
        "weights 0.1, still accumulate",
        _conv_weight_grads_overwritten_when_significant,
    ),
    Mutant(
        "equal_fresh_grads_share_one_buffer",
        ("ACCUM-2",),
        "the first backward stores one tensor as the .grad of every leaf (of at least one dimension) that receives "
        "an equal gradient, e.g. both operands of `a + b`, so later passes add into both at once",
        _equal_fresh_grads_share_one_buffer,
    ),
    Mutant(
        "zero_grad_keeping_tensors_makes_default_zeros",
        ("ACCUM-5",),
        "zero_grad(set_to_none=False) replaces each .grad by torch.zeros(shape): the default dtype (float32) and "
        "device instead of the parameter's",
        _zero_grad_keeping_tensors_makes_default_zeros,
    ),
    Mutant("new_parameters_start_with_zero_grad", ("ACCUM-1",), "a new nn.Parameter has a zero-filled .grad instead of None", _new_parameters_start_with_zero_grad),
    Mutant("paths_into_a_leaf_are_averaged", ("ACCUM-3",), "Tensor.backward() averages the gradients reaching a leaf along several paths instead of summing them", _paths_into_a_leaf_are_averaged),
    Mutant("explicit_set_to_none_keeps_zeros_on_modules", ("ACCUM-4",), "Module.zero_grad(set_to_none=True) fills zeros (the explicit argument is lost; the default still sets None)", _explicit_set_to_none_keeps_zeros_on_modules),
    Mutant("set_to_none_leaves_a_stale_accumulator", ("ACCUM-8",), "after zero_grad(set_to_none=True) (or the default) .grad reads None, but the next backward adds into the old gradient buffer", _set_to_none_leaves_a_stale_accumulator),
    Mutant("autograd_grad_accumulates_into_grad", ("ACCUM-10",), "torch.autograd.grad also accumulates its result into the .grad of the leaves it differentiates", _autograd_grad_accumulates_into_grad),
)
