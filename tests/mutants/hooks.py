"""Mutants of hooks clauses (HOOK-N, specs/hooks.md): each breaks one behaviour the way a regression would."""

from __future__ import annotations

import torch

from tests.mutants.base import Mutant


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


def _full_backward_hook_return_only_reaches_leaf_inputs(mp):
    original = torch.nn.Module.register_full_backward_hook

    def register_full_backward_hook(self, hook, **kwargs):
        inputs_are_leaves = []

        def record(module, args):
            inputs_are_leaves.append(all(a.is_leaf for a in args if isinstance(a, torch.Tensor)))

        self.register_forward_pre_hook(record)

        def replacing_only_for_leaves(module, grad_input, grad_output):
            result = hook(module, grad_input, grad_output)
            return result if inputs_are_leaves[-1] else None  # lost upstream of a non-leaf input

        return original(self, replacing_only_for_leaves, **kwargs)

    mp.setattr(torch.nn.Module, "register_full_backward_hook", register_full_backward_hook)


MUTANTS = (
    Mutant("deprecated_backward_hook_warns_user_warning", ("HOOK-13",), "register_backward_hook's deprecation warning is a UserWarning again (the pre-2.4 category)", _deprecated_backward_hook_warns_user_warning),
    Mutant("tensor_hook_return_ignored", ("HOOK-2", "HOOK-3"), "Tensor.register_hook ignores the hook's return value", _tensor_hook_return_ignored),
    Mutant("hook_handle_remove_does_nothing", ("HOOK-5",), "RemovableHandle.remove() leaves the hook registered", _hook_handle_remove_does_nothing),
    Mutant("forward_hook_return_ignored", ("HOOK-7",), "a forward hook's return value does not replace the module's output", _forward_hook_return_ignored),
    Mutant(
        "full_backward_hook_return_only_reaches_leaf_inputs",
        ("HOOK-10",),
        "a full backward hook's returned grad_input is used when the module's inputs are leaves, dropped when they are computed upstream",
        _full_backward_hook_return_only_reaches_leaf_inputs,
    ),
)
