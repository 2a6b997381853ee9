"""Mutants of the custom function clauses (specs/custom_function.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch
import torch.autograd.function as function_module

from tests.mutants.base import Mutant


def _original_apply():
    return torch.autograd.Function.apply.__func__


def _apply_records_only_when_every_input_requires_grad(mp):
    original = _original_apply()

    def apply(cls, *args, **kwargs):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if tensors and not all(t.requires_grad for t in tensors):
            with torch.no_grad():  # as if one input not requiring grad made the whole call untracked
                return original(cls, *args, **kwargs)
        return original(cls, *args, **kwargs)

    mp.setattr(torch.autograd.Function, "apply", classmethod(apply))


def _backward_results_doubled(mp):
    original = function_module.BackwardCFunction.apply

    def apply(self, *args):
        grads = original(self, *args)
        as_tuple = grads if isinstance(grads, tuple) else (grads,)
        doubled = tuple(g * 2 if isinstance(g, torch.Tensor) else g for g in as_tuple)
        return doubled if isinstance(grads, tuple) else doubled[0]

    mp.setattr(function_module.BackwardCFunction, "apply", apply)


def _save_for_backward_saves_copies(mp):
    def save_for_backward(self, *tensors):
        self.to_save = tuple(t.detach().clone() if isinstance(t, torch.Tensor) else t for t in tensors)

    mp.setattr(function_module.FunctionCtx, "save_for_backward", save_for_backward)


def _needs_input_grad_all_true(mp):
    getter = torch._C._FunctionBase.needs_input_grad

    def needs_input_grad(self):
        return tuple(True for _ in getter.__get__(self))

    mp.setattr(function_module.BackwardCFunction, "needs_input_grad", property(needs_input_grad), raising=False)


def _mark_dirty_ignored(mp):
    mp.setattr(function_module.FunctionCtx, "mark_dirty", lambda self, *args: None)


def _mark_non_differentiable_ignored(mp):
    mp.setattr(function_module.FunctionCtx, "mark_non_differentiable", lambda self, *args: None)


def _set_materialize_grads_ignored(mp):
    mp.setattr(function_module.FunctionCtx, "set_materialize_grads", lambda self, value: None)


def _once_differentiable_is_a_no_op(mp):
    mp.setattr(function_module, "once_differentiable", lambda fn: fn)


def _setup_context_gets_the_inputs_reversed(mp):
    original = _original_apply()

    def apply(cls, *args, **kwargs):
        setup = cls.setup_context
        if function_module._is_setup_context_defined(setup) and not getattr(setup, "_mutant", False):

            def reversed_inputs(ctx, inputs, output):
                return setup(ctx, tuple(reversed(inputs)), output)

            reversed_inputs._mutant = True
            mp.setattr(cls, "setup_context", staticmethod(reversed_inputs))
        return original(cls, *args, **kwargs)

    mp.setattr(torch.autograd.Function, "apply", classmethod(apply))


def _jvp_results_doubled(mp):
    original = function_module.BackwardCFunction.apply_jvp

    def apply_jvp(self, *args):
        tangents = original(self, *args)
        if isinstance(tangents, tuple):
            return tuple(t * 2 if isinstance(t, torch.Tensor) else t for t in tangents)
        return tangents * 2

    mp.setattr(function_module.BackwardCFunction, "apply_jvp", apply_jvp)


def _func_transforms_run_forward_directly(mp):
    def custom_function_call(cls, *args, **kwargs):
        return cls.forward(*args, **kwargs)  # the transform differentiates forward's ops: the custom backward is dropped

    mp.setattr(function_module, "custom_function_call", custom_function_call)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "function_apply_untracked_unless_every_input_requires_grad",
        ("FUNC-1",),
        "Function.apply records nothing (outputs do not require grad) when one tensor argument does not require grad",
        _apply_records_only_when_every_input_requires_grad,
    ),
    Mutant(
        "function_backward_results_doubled",
        ("FUNC-2",),
        "the engine hands the inputs twice what a custom Function's backward returned",
        _backward_results_doubled,
    ),
    Mutant(
        "save_for_backward_saves_copies",
        ("FUNC-3",),
        "ctx.save_for_backward saves detached copies: an in-place change of a saved tensor is no longer detected at backward",
        _save_for_backward_saves_copies,
    ),
    Mutant(
        "needs_input_grad_all_true",
        ("FUNC-4",),
        "ctx.needs_input_grad is True for every argument, also for tensors that do not require grad and non-tensors",
        _needs_input_grad_all_true,
    ),
    Mutant(
        "mark_dirty_ignored",
        ("FUNC-5",),
        "ctx.mark_dirty does nothing: apply returns a new view of the input changed in place, not the input with the Function as its history",
        _mark_dirty_ignored,
        regression="https://github.com/pytorch/pytorch/issues/133491",
    ),
    Mutant(
        "mark_non_differentiable_ignored",
        ("FUNC-6",),
        "ctx.mark_non_differentiable does nothing: the marked output requires grad",
        _mark_non_differentiable_ignored,
    ),
    Mutant(
        "set_materialize_grads_ignored",
        ("FUNC-7",),
        "ctx.set_materialize_grads(False) does nothing: backward gets zero tensors instead of None for unused outputs",
        _set_materialize_grads_ignored,
    ),
    Mutant(
        "once_differentiable_is_a_no_op",
        ("FUNC-8",),
        "torch.autograd.function.once_differentiable returns backward unchanged: double backward through it succeeds",
        _once_differentiable_is_a_no_op,
    ),
    Mutant(
        "setup_context_gets_the_inputs_reversed",
        ("FUNC-9",),
        "setup_context(ctx, inputs, output) receives the arguments of apply in reverse order",
        _setup_context_gets_the_inputs_reversed,
    ),
    Mutant(
        "function_jvp_results_doubled",
        ("FUNC-10",),
        "forward-mode AD gives a custom Function's outputs twice the tangents its jvp returned",
        _jvp_results_doubled,
    ),
    Mutant(
        "func_transforms_drop_the_custom_backward",
        ("FUNC-11",),
        "under a torch.func transform a setup_context-style Function runs its forward as plain code: torch.func.grad differentiates its ops, not its backward",
        _func_transforms_run_forward_directly,
        regression="https://github.com/pytorch/pytorch/issues/193279",
    ),
)
