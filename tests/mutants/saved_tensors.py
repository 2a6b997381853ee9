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


# ----------------------------------------------------------------------------- SAVED-8..13 (issue 17)


class _NodeView:
    """A graph node as the Python binding would hand it out, with some ``_saved_*`` / ``_raw_saved_*`` reads changed."""

    def __init__(self, node, tensor, read):
        object.__setattr__(self, "_node", node)
        object.__setattr__(self, "_tensor", tensor)
        object.__setattr__(self, "_read", read)

    def __getattr__(self, name):
        return self._read(self._node, self._tensor, name)

    def __dir__(self):
        return dir(self._node)


def _patch_saved_reads(mp, read):
    base = torch._C.TensorBase.grad_fn

    def grad_fn(self):
        node = base.__get__(self)
        return None if node is None else _NodeView(node, self, read)

    mp.setattr(torch.Tensor, "grad_fn", property(grad_fn))


def _saved_inputs_unpacked_into_new_objects(mp):
    def read(node, tensor, name):
        value = getattr(node, name)
        if name.startswith("_saved_") and name != "_saved_result" and isinstance(value, torch.Tensor):
            return value.detach().requires_grad_(value.requires_grad)  # a new object sharing the storage
        return value

    _patch_saved_reads(mp, read)


def _saved_output_is_the_output_object(mp):
    def read(node, tensor, name):
        value = getattr(node, name)
        return tensor if name == "_saved_result" else value  # unpacked into the output itself (a reference cycle)

    _patch_saved_reads(mp, read)


def _saved_tensors_readable_after_freeing(mp):
    kept = {}  # node id -> {name: the value first read}

    def read(node, tensor, name):
        cache = kept.setdefault(id(node), {})
        if name.startswith("_saved_"):
            try:
                cache[name] = getattr(node, name)
            except RuntimeError:
                if name in cache:
                    return cache[name]  # the node kept a second reference: freeing the graph did not release it
                raise
            return cache[name]
        return getattr(node, name)

    _patch_saved_reads(mp, read)


class _IgnoringHooks:
    """A ``SavedTensor`` whose ``register_hooks`` calls pack once and registers nothing."""

    def __init__(self, raw):
        self.raw = raw

    def register_hooks(self, pack, unpack):
        pack(torch.empty(0))


def _saved_tensor_register_hooks_ignored(mp):
    def read(node, tensor, name):
        value = getattr(node, name)
        return _IgnoringHooks(value) if name.startswith("_raw_saved_") else value

    _patch_saved_reads(mp, read)


def _disable_saved_tensors_hooks_does_nothing(mp):
    import contextlib

    mp.setattr(torch.autograd.graph, "disable_saved_tensors_hooks", lambda error_message: contextlib.nullcontext())


def _save_on_cpu_packs_before_the_copy_lands(mp):
    original = torch.autograd.graph.save_on_cpu

    class SaveOnCpu(original):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pack = self.pack_hook

            def pack_hook(tensor):
                packed = pack(tensor)
                device, copy = packed
                return device, torch.zeros_like(copy)  # an asynchronous copy read before it completed

            self.pack_hook = pack_hook

    mp.setattr(torch.autograd.graph, "save_on_cpu", SaveOnCpu)


def _allow_mutation_on_saved_tensors_does_nothing(mp):
    import contextlib

    mp.setattr(torch.autograd.graph, "allow_mutation_on_saved_tensors", lambda: contextlib.nullcontext())


MUTANTS += (
    Mutant(
        "saved_inputs_unpacked_into_new_objects",
        ("SAVED-8",),
        "grad_fn._saved_self / _saved_other of an operation that saved its input return a new tensor object sharing its storage, not the input (as when default saved-tensor hooks are on)",
        _saved_inputs_unpacked_into_new_objects,
    ),
    Mutant(
        "saved_output_is_the_output_object",
        ("SAVED-8",),
        "grad_fn._saved_result returns the output tensor object itself (the saved output is not packed, a reference cycle)",
        _saved_output_is_the_output_object,
    ),
    Mutant(
        "saved_tensors_readable_after_freeing",
        ("SAVED-9",),
        "grad_fn._saved_* keep returning the saved values after backward freed the graph (the node keeps a second reference)",
        _saved_tensors_readable_after_freeing,
    ),
    Mutant(
        "saved_tensor_register_hooks_ignored",
        ("SAVED-10",),
        "grad_fn._raw_saved_*.register_hooks(pack, unpack) calls pack but registers nothing: reads and backward never call unpack",
        _saved_tensor_register_hooks_ignored,
    ),
    Mutant(
        "disable_saved_tensors_hooks_does_nothing",
        ("SAVED-11",),
        "torch.autograd.graph.disable_saved_tensors_hooks(message) disables nothing: saved_tensors_hooks and save_on_cpu can be entered inside it",
        _disable_saved_tensors_hooks_does_nothing,
    ),
    Mutant(
        "save_on_cpu_packs_before_the_copy_lands",
        ("SAVED-12",),
        "save_on_cpu's pack hook keeps a CPU buffer read before its copy completed (zeros): backward computes with wrong saved values",
        _save_on_cpu_packs_before_the_copy_lands,
    ),
    Mutant(
        "allow_mutation_on_saved_tensors_does_nothing",
        ("SAVED-13",),
        "torch.autograd.graph.allow_mutation_on_saved_tensors() clones nothing: backward after an in-place change of a saved tensor raises",
        _allow_mutation_on_saved_tensors_does_nothing,
    ),
)
