"""Deliberately broken torch behaviours, to prove the conformance suite notices them.

Loaded as a pytest plugin: ``pytest -p tests.mutants --mutant NAME``.  The
patch is applied when pytest configures the run and undone when it ends;
without ``--mutant`` this plugin does nothing.  Each mutant names the clauses
it breaks: ``tests/test_mutations.py`` asserts the suite fails exactly there
(at least), with the mutant active.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import pytest
import torch
from hypothesis import Phase, settings

from conformance.graphs import recorded_leaves
from tests.patching import apply_for_the_run, patch_everywhere, undo_after_the_run

_grad_mode = torch.autograd.grad_mode
_F = torch.nn.functional


@dataclass(frozen=True)
class Mutant:
    name: str
    breaks: tuple[str, ...]  # clause IDs whose tests must fail
    description: str
    apply: Callable[[pytest.MonkeyPatch], None]


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


def _zeros_requires_grad_by_default(mp):
    original = torch.zeros

    def zeros(*args, **kwargs):
        dtype = kwargs.get("dtype") or torch.get_default_dtype()
        if "requires_grad" not in kwargs and (dtype.is_floating_point or dtype.is_complex):
            kwargs["requires_grad"] = True
        return original(*args, **kwargs)

    mp.setattr(torch, "zeros", zeros)


def _parameter_not_trainable_by_default(mp):
    original_new = torch.nn.Parameter.__new__

    def new(cls, data=None, requires_grad=False):
        return original_new(cls, data, requires_grad)

    mp.setattr(torch.nn.Parameter, "__new__", new)


def _sin_drops_requires_grad(mp):
    original = torch.sin
    mp.setattr(torch, "sin", lambda t, *a, **k: original(t.detach(), *a, **k))
    mp.setattr(torch.Tensor, "sin", lambda self, *a, **k: original(self.detach(), *a, **k))


def _requires_grad_method_accepts_integers(mp):
    original = torch.Tensor.requires_grad_

    def requires_grad_(self, requires_grad=True):
        if not (self.dtype.is_floating_point or self.dtype.is_complex):
            return self  # silently ignore instead of raising
        return original(self, requires_grad)

    mp.setattr(torch.Tensor, "requires_grad_", requires_grad_)


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


def _detach_copies(mp):
    original = torch.Tensor.detach
    mp.setattr(torch.Tensor, "detach", lambda self: original(self).clone())


def _data_is_tracked(mp):
    base_data = torch._C.TensorBase.data

    def set_data(self, value):
        base_data.__set__(self, value)

    # .data now returns detach(): shares the version counter, so changes are caught
    mp.setattr(torch.Tensor, "data", property(lambda self: self.detach(), set_data))


def _numpy_ignores_requires_grad(mp):
    original = torch.Tensor.numpy
    mp.setattr(torch.Tensor, "numpy", lambda self, *a, **k: original(self.detach(), *a, **k))


def _to_always_copies(mp):
    original = torch.Tensor.to
    mp.setattr(torch.Tensor, "to", lambda self, *a, **k: (lambda r: r.clone() if r is self else r)(original(self, *a, **k)))


def _item_returns_float_for_integers(mp):
    original = torch.Tensor.item

    def item(self):
        value = original(self)
        return float(value) if type(value) is int else value

    mp.setattr(torch.Tensor, "item", item)


def _item_of_many_elements_returns_the_first(mp):
    original = torch.Tensor.item
    mp.setattr(torch.Tensor, "item", lambda self: original(self.reshape(-1)[0]) if self.numel() > 1 else original(self))


def _deprecated_backward_hook_warns_user_warning(mp):
    """The pre-2.4 category (HOOK-14) on a torch where HOOK-13 applies."""
    import types

    import torch.nn.modules.module as module_py

    real = module_py.warnings

    def warn(message, category=None, *args, **kwargs):
        if category is FutureWarning and "non-full backward hook" in str(message):
            category = UserWarning
        return real.warn(message, category, *args, **kwargs)

    shim = types.SimpleNamespace(**{name: getattr(real, name) for name in dir(real) if not name.startswith("__")})
    shim.warn = warn
    mp.setattr(module_py, "warnings", shim)


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


def _retain_grad_is_a_no_op(mp):
    mp.setattr(torch.Tensor, "retain_grad", lambda self: None)


def _non_leaf_grad_read_is_silent(mp):
    base_grad = torch._C.TensorBase.grad

    def get_grad(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return base_grad.__get__(self)

    mp.setattr(torch.Tensor, "grad", property(get_grad, base_grad.__set__, base_grad.__delete__))


def _add_on_leaf_allowed(mp):
    original = torch.Tensor.add_

    def add_(self, *args, **kwargs):
        if self.is_leaf and self.requires_grad:
            with torch.no_grad():  # the missing check: the write goes through unrecorded
                return original(self, *args, **kwargs)
        return original(self, *args, **kwargs)

    mp.setattr(torch.Tensor, "add_", add_)


def _mul_bypasses_autograd(mp):
    original = torch.Tensor.mul_

    def mul_(self, *args, **kwargs):
        if self.requires_grad and not self.is_leaf:
            original(self.data, *args, **kwargs)  # neither recorded nor versioned
            return self
        return original(self, *args, **kwargs)

    mp.setattr(torch.Tensor, "mul_", mul_)


def _tensor_hook_return_ignored(mp):
    original = torch.Tensor.register_hook

    def register_hook(self, hook):
        return original(self, lambda grad: (hook(grad), None)[1])  # the hook runs, its result is dropped

    mp.setattr(torch.Tensor, "register_hook", register_hook)


def _hook_handle_remove_does_nothing(mp):
    mp.setattr(torch.utils.hooks.RemovableHandle, "remove", lambda self: None)


def _forward_hook_return_ignored(mp):
    original = torch.nn.Module.register_forward_hook

    def register_forward_hook(self, hook, **kwargs):
        return original(self, lambda *args: (hook(*args), None)[1], **kwargs)  # the output is never replaced

    mp.setattr(torch.nn.Module, "register_forward_hook", register_forward_hook)


def _train_does_not_recurse(mp):
    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode  # the children keep their mode
        return self

    mp.setattr(torch.nn.Module, "train", train)


def _eval_freezes_parameters(mp):
    original = torch.nn.Module.train

    def train(self, mode=True):
        for param in self.parameters():
            param.requires_grad_(mode)
        return original(self, mode)

    mp.setattr(torch.nn.Module, "train", train)


def _saved_tensors_hooks_ignored(mp):
    class SavedTensorsHooks(torch.autograd.graph.saved_tensors_hooks):
        def __enter__(self):
            pass

        def __exit__(self, *exc):
            pass

    mp.setattr(torch.autograd.graph, "saved_tensors_hooks", SavedTensorsHooks)


def _inference_mode_does_nothing(mp):
    class InferenceMode(_grad_mode.inference_mode):
        def __enter__(self):
            pass

        def __exit__(self, *exc):
            pass

    patch_everywhere(mp, "inference_mode", InferenceMode)


def _module_requires_grad_false_ignored(mp):
    original = torch.nn.Module.requires_grad_

    def requires_grad_(self, requires_grad=True):
        return self if not requires_grad else original(self, requires_grad)

    mp.setattr(torch.nn.Module, "requires_grad_", requires_grad_)


def _mse_sum_is_mean(mp):
    original = _F.mse_loss

    def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", **kwargs):
        return original(input, target, size_average, reduce, "mean" if reduction == "sum" else reduction, **kwargs)

    mp.setattr(_F, "mse_loss", mse_loss)


MUTANTS = {
    m.name: m
    for m in (
        Mutant("no_grad_does_nothing", ("GRADMODE-1", "GRADMODE-2", "SAVED-2"), "torch.no_grad() neither disables grad mode nor restores it", _no_grad_does_nothing),
        Mutant("no_grad_exit_keeps_grad_disabled", ("GRADMODE-5",), "leaving torch.no_grad() leaves grad mode disabled", _no_grad_exit_keeps_grad_disabled),
        Mutant("set_grad_enabled_function_ignored", ("GRADMODE-7",), "torch.set_grad_enabled(False) called as a function does nothing", _set_grad_enabled_function_ignored),
        Mutant("inference_mode_is_no_grad", ("GRADMODE-14",), "torch.inference_mode() behaves like no_grad: no inference tensors", _inference_mode_is_no_grad),
        Mutant("zeros_requires_grad_by_default", ("REQGRAD-1",), "torch.zeros(...) requires grad unless told otherwise", _zeros_requires_grad_by_default),
        Mutant("parameter_not_trainable_by_default", ("REQGRAD-4", "REQGRAD-5"), "nn.Parameter defaults to requires_grad=False", _parameter_not_trainable_by_default),
        Mutant("sin_drops_requires_grad", ("REQGRAD-6",), "torch.sin / Tensor.sin detach their input", _sin_drops_requires_grad),
        Mutant("backward_overwrites_grad", ("ACCUM-2", "ACCUM-9"), "Tensor.backward() overwrites .grad instead of accumulating", _backward_overwrites_grad),
        Mutant("zero_grad_default_keeps_zeros", ("ACCUM-6",), "zero_grad() defaults to set_to_none=False (the pre-2.0 default)", _zero_grad_default_keeps_zeros),
        Mutant("detach_copies", ("DETACH-1", "DETACH-3"), "Tensor.detach() returns a copy instead of sharing storage", _detach_copies),
        Mutant("data_is_tracked", ("DETACH-4",), "Tensor.data behaves like detach(): in-place changes are tracked", _data_is_tracked),
        Mutant("numpy_ignores_requires_grad", ("XFER-5",), "Tensor.numpy() silently detaches a tensor that requires grad", _numpy_ignores_requires_grad),
        Mutant("to_always_copies", ("XFER-3",), "Tensor.to() copies even when nothing changes", _to_always_copies),
        Mutant("item_returns_float_for_integers", ("XFER-9",), "Tensor.item() of an integer tensor returns a float", _item_returns_float_for_integers),
        Mutant("item_of_many_elements_returns_the_first", ("XFER-11",), "Tensor.item() of a tensor with several elements returns the first instead of raising", _item_of_many_elements_returns_the_first),
        Mutant("deprecated_backward_hook_warns_user_warning", ("HOOK-13",), "register_backward_hook's deprecation warning is a UserWarning again (the pre-2.4 category)", _deprecated_backward_hook_warns_user_warning),
        Mutant("backward_always_retains_graph", ("BWD-1", "SAVED-5"), "Tensor.backward() never frees the graph", _backward_always_retains_graph),
        Mutant("backward_ignores_inputs", ("BWD-7",), "Tensor.backward(inputs=...) fills every leaf's .grad", _backward_ignores_inputs),
        Mutant("retain_grad_is_a_no_op", ("LEAF-6",), "Tensor.retain_grad() does nothing", _retain_grad_is_a_no_op),
        Mutant("non_leaf_grad_read_is_silent", ("LEAF-5",), "reading .grad of a non-leaf does not warn", _non_leaf_grad_read_is_silent),
        Mutant("add_on_leaf_allowed", ("INPLACE-1",), "Tensor.add_() on a leaf that requires grad writes instead of raising", _add_on_leaf_allowed),
        Mutant("mul_bypasses_autograd", ("INPLACE-4", "INPLACE-7"), "Tensor.mul_() on a non-leaf is neither recorded nor versioned", _mul_bypasses_autograd),
        Mutant("tensor_hook_return_ignored", ("HOOK-2", "HOOK-3"), "Tensor.register_hook ignores the hook's return value", _tensor_hook_return_ignored),
        Mutant("hook_handle_remove_does_nothing", ("HOOK-5",), "RemovableHandle.remove() leaves the hook registered", _hook_handle_remove_does_nothing),
        Mutant("forward_hook_return_ignored", ("HOOK-7",), "a forward hook's return value does not replace the module's output", _forward_hook_return_ignored),
        Mutant("train_does_not_recurse", ("MODULE-1",), "Module.train()/eval() set .training on the module itself only, not its children", _train_does_not_recurse),
        Mutant("eval_freezes_parameters", ("MODULE-2", "SAVED-7"), "Module.train(mode) also sets requires_grad=mode on every parameter", _eval_freezes_parameters),
        Mutant("mse_sum_is_mean", ("MODULE-14",), "F.mse_loss(reduction='sum') averages instead of summing", _mse_sum_is_mean),
        Mutant("saved_tensors_hooks_ignored", ("SAVED-1", "SAVED-6"), "saved_tensors_hooks installs no hooks: operations save tensors without calling pack", _saved_tensors_hooks_ignored),
        Mutant("inference_mode_does_nothing", ("GRADMODE-14", "SAVED-3"), "torch.inference_mode() neither disables grad nor creates inference tensors", _inference_mode_does_nothing),
        Mutant("module_requires_grad_false_ignored", ("REQGRAD-7", "SAVED-4"), "Module.requires_grad_(False) leaves the parameters trainable", _module_requires_grad_false_ignored),
        Mutant("requires_grad_method_accepts_integers", ("REQGRAD-8",), "Tensor.requires_grad_() silently ignores integer tensors", _requires_grad_method_accepts_integers),
    )
}

def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--mutant", choices=sorted(MUTANTS), help="break one torch behaviour (see tests/mutants.py)")


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("mutant")
    if name:
        # Only pass/fail matters here: skip shrinking, which dominates the time of a failing run.
        # A smaller budget keeps eleven-plus suite runs quick; test_mutations proves it still catches every mutant.
        settings.register_profile("mutation", settings.get_profile("ci"), max_examples=10, phases=[Phase.explicit, Phase.reuse, Phase.generate])
        settings.load_profile("mutation")
        apply_for_the_run(config, MUTANTS[name].apply)


def pytest_unconfigure(config: pytest.Config) -> None:
    undo_after_the_run(config)


def pytest_report_header(config: pytest.Config) -> str | None:
    name = config.getoption("mutant")
    return f"MUTANT ACTIVE: {name}: {MUTANTS[name].description}" if name else None
