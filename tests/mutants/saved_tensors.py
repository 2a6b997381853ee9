"""Mutants of saved tensors clauses (SAVED-N, specs/saved_tensors.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

from tests.mutants.base import Mutant

_F = torch.nn.functional


def _saved_tensors_hooks_ignored(mp):
    class SavedTensorsHooks(torch.autograd.graph.saved_tensors_hooks):
        def __enter__(self):
            pass

        def __exit__(self, *exc):
            pass

    mp.setattr(torch.autograd.graph, "saved_tensors_hooks", SavedTensorsHooks)


def _unpack_hook_result_ignored(mp):
    original = torch.autograd.graph.saved_tensors_hooks

    class SavedTensorsHooks(original):
        def __init__(self, pack_hook, unpack_hook):
            # pack as asked, but keep the saved tensor too, and backward uses it instead of unpack's result
            super().__init__(lambda t: (pack_hook(t), t), lambda packed: (unpack_hook(packed[0]), packed[1])[1])

    mp.setattr(torch.autograd.graph, "saved_tensors_hooks", SavedTensorsHooks)


def _exp_saves_expm1_result(mp):
    def exp(input, *args, **kwargs):
        return torch.special.expm1(input, *args, **kwargs) + 1  # backward saves expm1's result, not exp's

    mp.setattr(torch, "exp", exp)
    mp.setattr(torch.Tensor, "exp", exp)


def _linear_records_under_no_grad(mp):
    original = _F.linear

    def linear(*args, **kwargs):
        with torch.enable_grad():
            return original(*args, **kwargs)

    mp.setattr(_F, "linear", linear)


def _inference_mode_decorator_records(mp):
    mp.setattr(torch.inference_mode, "__call__", lambda self, func: func)


def _linear_saves_with_frozen_weights(mp):
    original = _F.linear

    def linear(input, weight, bias=None):
        if torch.is_grad_enabled() and not weight.requires_grad:
            weight = weight.detach().requires_grad_()  # as a dequantising wrapper might make a fresh leaf
        return original(input, weight, bias)

    mp.setattr(_F, "linear", linear)


def _autograd_grad_retains_graph_by_default(mp):
    original = torch.autograd.grad

    def grad(outputs, inputs, grad_outputs=None, retain_graph=None, *args, **kwargs):
        return original(outputs, inputs, grad_outputs, True if retain_graph is None else retain_graph, *args, **kwargs)

    mp.setattr(torch.autograd, "grad", grad)


MUTANTS = (
    Mutant("saved_tensors_hooks_ignored", ("SAVED-1", "SAVED-6"), "saved_tensors_hooks installs no hooks: operations save tensors without calling pack", _saved_tensors_hooks_ignored),
    Mutant("exp_saves_expm1_result", ("SAVED-1",), "torch.exp(x) and x.exp() compute expm1(x) + 1, so backward saves expm1's result instead of exp's", _exp_saves_expm1_result),
    Mutant(
        "linear_records_under_no_grad",
        ("SAVED-2",),
        "F.linear (every nn.Linear) runs with grad enabled even under no_grad: it records a graph and saves its input and weight",
        _linear_records_under_no_grad,
    ),
    Mutant(
        "inference_mode_decorator_records",
        ("SAVED-3",),
        "@torch.inference_mode() as a decorator returns the function undecorated (the context manager still works)",
        _inference_mode_decorator_records,
    ),
    Mutant(
        "linear_saves_with_frozen_weights",
        ("SAVED-4",),
        "F.linear with a weight that does not require grad computes with a fresh leaf that does: a frozen module records and saves",
        _linear_saves_with_frozen_weights,
    ),
    Mutant(
        "autograd_grad_retains_graph_by_default",
        ("SAVED-5",),
        "torch.autograd.grad() without retain_graph keeps the graph and what it saved (Tensor.backward() still frees it)",
        _autograd_grad_retains_graph_by_default,
    ),
    Mutant(
        "unpack_hook_result_ignored",
        ("SAVED-6",),
        "backward computes with the tensor that was packed, not with what the unpack hook returns (the symptom of "
        "saved_tensors_hooks around torch.compile'd functions in torch 2.1, pytorch#116221, a duplicate of #113263)",
        _unpack_hook_result_ignored,
        regression="https://github.com/pytorch/pytorch/issues/116221",
    ),
)
