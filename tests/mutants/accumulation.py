"""Mutants of accumulation clauses (ACCUM-N, specs/accumulation.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

from conformance.graphs import recorded_leaves
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
)
