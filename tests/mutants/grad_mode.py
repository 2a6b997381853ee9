"""Mutants of grad mode clauses (GRADMODE-N, specs/grad_mode.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import functools

import torch
import torch.utils._contextlib

from tests.mutants.base import Mutant
from tests.patching import patch_everywhere

_grad_mode = torch.autograd.grad_mode


def _no_grad_does_nothing(mp):
    class NoGrad(_grad_mode.no_grad):
        def __enter__(self):
            pass

        def __exit__(self, *exc):
            pass

    patch_everywhere(mp, "no_grad", NoGrad)


def _no_grad_exit_keeps_grad_disabled(mp):
    class NoGrad(_grad_mode.no_grad):
        def __exit__(self, *exc):
            torch.set_grad_enabled(False)

    patch_everywhere(mp, "no_grad", NoGrad)


def _set_grad_enabled_function_ignored(mp):
    original = _grad_mode.set_grad_enabled

    class SetGradEnabled(original):
        def __init__(self, mode):  # as a function: nothing happens
            self.prev = torch.is_grad_enabled()
            self.mode = mode

        def __enter__(self):  # as a context manager: still works
            torch._C._set_grad_enabled(self.mode)

    patch_everywhere(mp, "set_grad_enabled", SetGradEnabled)


def _inference_mode_is_no_grad(mp):
    class InferenceMode(_grad_mode.no_grad):
        def __init__(self, mode: bool = True):
            super().__init__()

    patch_everywhere(mp, "inference_mode", InferenceMode)


def _inference_mode_does_nothing(mp):
    class InferenceMode(_grad_mode.inference_mode):
        def __enter__(self):
            pass

        def __exit__(self, *exc):
            pass

    patch_everywhere(mp, "inference_mode", InferenceMode)


def _neg_records_under_no_grad(mp):
    original = torch.neg

    def neg(*args, **kwargs):
        if torch.is_inference_mode_enabled():
            return original(*args, **kwargs)
        with torch.enable_grad():  # the op's kernel forgot to check grad mode
            return original(*args, **kwargs)

    mp.setattr(torch, "neg", neg)


#: the view ops of the registry, as torch functions and Tensor methods
_VIEW_OPS = ("transpose", "permute", "unsqueeze", "squeeze", "reshape", "flatten", "narrow", "select", "view", "view_as", "expand", "broadcast_to")


def _views_of_inference_tensors_are_normal(mp):
    def normal_view(original):
        def view(self, *args, **kwargs):
            if torch.is_inference_mode_enabled() and isinstance(self, torch.Tensor) and self.is_inference():
                with torch.inference_mode(False):  # the view is taken of a normal copy
                    return original(self.clone(), *args, **kwargs)
            return original(self, *args, **kwargs)

        return view

    for name in _VIEW_OPS:
        for owner in (torch, torch.Tensor):
            if hasattr(owner, name):
                mp.setattr(owner, name, normal_view(getattr(owner, name)))


def _full_like_drops_requires_grad_under_no_grad(mp):
    original = torch.full_like

    def full_like(*args, requires_grad=False, **kwargs):
        made = original(*args, **kwargs)
        return made.requires_grad_(requires_grad) if torch.is_grad_enabled() else made  # set only in grad mode

    mp.setattr(torch, "full_like", full_like)


def _generator_restores_first_callers_mode(mp):
    def _wrap_generator(ctx_factory, func):
        @functools.wraps(func)
        def generator_context(*args, **kwargs):
            gen = func(*args, **kwargs)
            callers_mode = torch.is_grad_enabled()  # remembered once, at the first resumption
            with ctx_factory():
                response = gen.send(None)
            while True:
                request = yield response
                try:
                    with ctx_factory():
                        response = gen.send(request)
                except StopIteration as stop:
                    return stop.value
                finally:
                    torch._C._set_grad_enabled(callers_mode)

        return generator_context

    mp.setattr(torch.utils._contextlib, "_wrap_generator", _wrap_generator)


def _decorator_context_shared_between_calls(mp):
    mp.setattr(torch.utils._contextlib._DecoratorContextManager, "clone", lambda self: self)  # every call enters the one instance


def _set_grad_enabled_decorator_changes_mode(mp):
    class SetGradEnabled(_grad_mode.set_grad_enabled):
        def __call__(self, orig_func):  # no longer undoes what __init__ set
            return torch.utils._contextlib._DecoratorContextManager.__call__(self, orig_func)

    patch_everywhere(mp, "set_grad_enabled", SetGradEnabled)


def _inference_mode_decorator_ignores_mode(mp):
    class InferenceMode(_grad_mode.inference_mode):
        def clone(self):
            return self.__class__()  # the decorated function runs with the default mode=True

    patch_everywhere(mp, "inference_mode", InferenceMode)


def _bare_no_grad_decorator_does_nothing(mp):
    class NoGrad(_grad_mode.no_grad):
        def __new__(cls, orig_func=None):
            return super().__new__(cls) if orig_func is None else orig_func

    patch_everywhere(mp, "no_grad", NoGrad)


def _transpose_under_no_grad_drops_requires_grad(mp):
    original = torch.Tensor.transpose

    def transpose(self, *args, **kwargs):
        return original(self if torch.is_grad_enabled() else self.detach(), *args, **kwargs)

    mp.setattr(torch.Tensor, "transpose", transpose)


def _set_grad_enabled_context_not_restored_on_exception(mp):
    class SetGradEnabled(_grad_mode.set_grad_enabled):
        def __exit__(self, exc_type, exc_value, traceback):
            if exc_type is None:  # restored on a normal exit only
                torch._C._set_grad_enabled(self.prev)

    patch_everywhere(mp, "set_grad_enabled", SetGradEnabled)


def _grad_mode_reported_process_wide(mp):
    last_set = {}
    original_set, original_is = torch._C._set_grad_enabled, torch.is_grad_enabled

    def set_grad_enabled(mode):
        last_set["mode"] = bool(mode)
        original_set(mode)

    def is_grad_enabled():
        return original_is() and last_set.get("mode", True)  # the last mode any thread set

    mp.setattr(torch._C, "_set_grad_enabled", set_grad_enabled)
    mp.setattr(torch, "is_grad_enabled", is_grad_enabled)


class _ResultsRequireGrad(torch.overrides.TorchFunctionMode):
    """Under no_grad, a floating-point result computed from a tensor that requires grad is made a leaf requiring grad."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        inputs = [a for a in (*args, *(kwargs or {}).values()) if isinstance(a, torch.Tensor)]
        if (
            isinstance(result, torch.Tensor)
            and not torch.is_grad_enabled()
            and result.is_leaf
            and result.dtype.is_floating_point
            and any(t.requires_grad for t in inputs)
        ):
            result.requires_grad_(True)
        return result


def _no_grad_results_are_leaves_requiring_grad(mp):
    class NoGrad(_grad_mode.no_grad):
        def __enter__(self):
            super().__enter__()
            self._results_require_grad = _ResultsRequireGrad()
            self._results_require_grad.__enter__()

        def __exit__(self, *exc):
            self._results_require_grad.__exit__(*exc)
            super().__exit__(*exc)

    patch_everywhere(mp, "no_grad", NoGrad)


def _isub_under_no_grad_makes_a_new_tensor(mp):
    original = torch.Tensor.__isub__

    def isub(self, other):
        return self - other if not torch.is_grad_enabled() else original(self, other)

    mp.setattr(torch.Tensor, "__isub__", isub)


def _mul_saves_inference_tensors_silently(mp):
    original = torch.mul

    def mul(*args, **kwargs):
        if not torch.is_inference_mode_enabled():
            args = tuple(a.clone() if isinstance(a, torch.Tensor) and a.is_inference() else a for a in args)
        return original(*args, **kwargs)

    mp.setattr(torch, "mul", mul)


def _add__updates_inference_tensors_outside_inference_mode(mp):
    original = torch.Tensor.add_

    def add_(self, *args, **kwargs):
        if self.is_inference() and not torch.is_inference_mode_enabled():
            with torch.inference_mode():
                return original(self, *args, **kwargs)
        return original(self, *args, **kwargs)

    mp.setattr(torch.Tensor, "add_", add_)


def _inference_mode_exception_exit_leaves_grad_disabled(mp):
    class InferenceMode(_grad_mode.inference_mode):
        def __exit__(self, exc_type, exc_value, traceback):
            super().__exit__(exc_type, exc_value, traceback)
            if exc_type is not None:
                torch._C._set_grad_enabled(False)

    patch_everywhere(mp, "inference_mode", InferenceMode)


MUTANTS = (
    Mutant("no_grad_does_nothing", ("GRADMODE-1", "GRADMODE-2", "SAVED-2"), "torch.no_grad() neither disables grad mode nor restores it", _no_grad_does_nothing),
    Mutant("no_grad_exit_keeps_grad_disabled", ("GRADMODE-5",), "leaving torch.no_grad() leaves grad mode disabled", _no_grad_exit_keeps_grad_disabled),
    Mutant("set_grad_enabled_function_ignored", ("GRADMODE-7",), "torch.set_grad_enabled(False) called as a function does nothing", _set_grad_enabled_function_ignored),
    Mutant("inference_mode_is_no_grad", ("GRADMODE-14",), "torch.inference_mode() behaves like no_grad: no inference tensors", _inference_mode_is_no_grad),
    Mutant("inference_mode_does_nothing", ("GRADMODE-14", "SAVED-3"), "torch.inference_mode() neither disables grad nor creates inference tensors", _inference_mode_does_nothing),
    Mutant("neg_records_under_no_grad", ("GRADMODE-1", "GRADMODE-2"), "torch.neg records its result (grad_fn set) inside no_grad; the other ops do not", _neg_records_under_no_grad),
    Mutant("views_of_inference_tensors_are_normal", ("GRADMODE-14",), "inside inference_mode, a view of an inference tensor is a normal tensor (views of normal tensors behave)", _views_of_inference_tensors_are_normal),
    Mutant("full_like_drops_requires_grad_under_no_grad", ("GRADMODE-11",), "torch.full_like(..., requires_grad=True) inside no_grad returns a tensor that does not require grad", _full_like_drops_requires_grad_under_no_grad),
    Mutant("generator_restores_first_callers_mode", ("GRADMODE-4",), "a generator decorated with a grad mode hands back, after each resumption, the grad mode its caller had at the first one", _generator_restores_first_callers_mode),
    Mutant(
        "decorator_context_shared_between_calls",
        ("GRADMODE-5", "GRADMODE-6"),
        "@torch.no_grad() / @torch.enable_grad() enter one context object for every call: a recursive call overwrites the saved mode (torch 1.6)",
        _decorator_context_shared_between_calls,
        regression="https://github.com/pytorch/pytorch/issues/44531",
    ),
    Mutant(
        "set_grad_enabled_decorator_changes_mode",
        ("GRADMODE-9",),
        "decorating a function with @torch.set_grad_enabled(False) disables grad mode for the code after it (torch <= 2.1)",
        _set_grad_enabled_decorator_changes_mode,
        regression="https://github.com/pytorch/pytorch/issues/113298",
    ),
    Mutant(
        "inference_mode_decorator_ignores_mode",
        ("GRADMODE-17",),
        "@torch.inference_mode(False) as a decorator turns inference mode on; the context manager works (torch 1.10-1.11)",
        _inference_mode_decorator_ignores_mode,
        regression="https://github.com/pytorch/pytorch/issues/74094",
    ),
    Mutant("bare_no_grad_decorator_does_nothing", ("GRADMODE-1", "GRADMODE-2"), "@torch.no_grad without parentheses returns the function undecorated; @torch.no_grad() works", _bare_no_grad_decorator_does_nothing),
    Mutant("transpose_under_no_grad_drops_requires_grad", ("GRADMODE-3",), "Tensor.transpose inside no_grad returns a view that does not require grad", _transpose_under_no_grad_drops_requires_grad),
    Mutant("set_grad_enabled_context_not_restored_on_exception", ("GRADMODE-8",), "leaving `with torch.set_grad_enabled(mode):` by an exception keeps `mode`", _set_grad_enabled_context_not_restored_on_exception),
    Mutant("grad_mode_reported_process_wide", ("GRADMODE-10",), "torch.is_grad_enabled() reports the mode last set by any thread", _grad_mode_reported_process_wide),
    Mutant("no_grad_results_are_leaves_requiring_grad", ("GRADMODE-2", "GRADMODE-12"), "inside no_grad, a result computed from a tensor that requires grad is a leaf that requires grad", _no_grad_results_are_leaves_requiring_grad),
    Mutant("isub_under_no_grad_makes_a_new_tensor", ("GRADMODE-13",), "`param -= update` inside no_grad binds param to a new tensor instead of updating it in place", _isub_under_no_grad_makes_a_new_tensor),
    Mutant("mul_saves_inference_tensors_silently", ("GRADMODE-15",), "torch.mul outside inference mode copies an inference operand instead of raising", _mul_saves_inference_tensors_silently),
    Mutant("add__updates_inference_tensors_outside_inference_mode", ("GRADMODE-16",), "Tensor.add_ updates an inference tensor outside inference mode", _add__updates_inference_tensors_outside_inference_mode),
    Mutant("inference_mode_exception_exit_leaves_grad_disabled", ("GRADMODE-18",), "leaving torch.inference_mode() by an exception leaves grad mode disabled", _inference_mode_exception_exit_leaves_grad_disabled),
)
