"""Mutants of cross-device clauses (XDEV-N, specs/cross_device.md): each breaks one behaviour off the CPU only.

Their clauses' tests compare the device under test with the CPU and skip on the
CPU, so these mutants are proven on a non-CPU device:
``pytest conformance/tests/test_cross_device.py --device emu -p tests.mutants --mutant NAME``.
Every patch leaves CPU tensors alone: a backend regression the CPU-only suite
could not see.
"""

from __future__ import annotations

import functools

import torch

from tests.mutants.base import Mutant


def _off_cpu(*values) -> bool:
    return any(isinstance(v, torch.Tensor) and v.device.type != "cpu" for v in values)


def _grad_fn_is_wrapped_off_cpu(mp):
    """``t.grad_fn`` of a non-CPU tensor answers a wrapper node (as a backend that wraps autograd nodes would)."""
    original = torch._C.TensorBase.grad_fn

    class DeviceBackward:
        def __init__(self, node):
            self.node = node

        def __getattr__(self, name):
            return getattr(self.node, name)

    def grad_fn(self):
        node = original.__get__(self)
        return DeviceBackward(node) if node is not None and self.device.type != "cpu" else node

    mp.setattr(torch.Tensor, "grad_fn", property(grad_fn))


#: in-place methods whose version bump the next mutant drops (the forms conformance/testlib/inplace_ops.py spells as methods)
_INPLACE_METHODS = ("add_", "sub_", "mul_", "div_", "neg_", "pow_", "sin_", "exp_", "tanh_", "sigmoid_", "clamp_", "zero_", "fill_", "copy_", "masked_fill_", "relu_")


def _inplace_skips_the_version_counter_off_cpu(mp):
    """In-place methods of non-CPU tensors write without bumping the version counter (autograd still records them)."""
    for name in _INPLACE_METHODS:
        original = getattr(torch.Tensor, name)

        def method(self, *args, _original=original, **kwargs):
            if self.device.type == "cpu":
                return _original(self, *args, **kwargs)
            with torch.autograd._unsafe_preserve_version_counter(self):
                return _original(self, *args, **kwargs)

        mp.setattr(torch.Tensor, name, functools.wraps(original)(method))


def _backward_retains_the_graph_off_cpu(mp):
    """``Tensor.backward`` of a non-CPU tensor keeps its graph by default: a second backward passes instead of raising."""
    original = torch.Tensor.backward

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        if retain_graph is None and self.device.type != "cpu":
            retain_graph = True
        return original(self, gradient, retain_graph, create_graph, inputs)

    mp.setattr(torch.Tensor, "backward", backward)


def _sum_accumulates_in_float32_off_cpu(mp):
    """``Tensor.sum`` of a non-CPU float64 tensor accumulates in float32 (a device reduction losing precision)."""
    original = torch.Tensor.sum

    def tensor_sum(self, *args, **kwargs):
        if self.device.type != "cpu" and self.dtype == torch.float64:
            return original(self.float(), *args, **kwargs).double()
        return original(self, *args, **kwargs)

    mp.setattr(torch.Tensor, "sum", tensor_sum)


def _grads_of_non_cpu_leaves_land_on_the_cpu(mp):
    """Gradients of non-CPU leaves are delivered on the CPU: ``.grad`` and ``torch.autograd.grad`` answer CPU tensors."""
    original_grad = torch._C.TensorBase.grad
    original_autograd_grad = torch.autograd.grad

    def grad(self):
        value = original_grad.__get__(self)
        return value.cpu() if value is not None and self.device.type != "cpu" else value

    def autograd_grad(outputs, inputs, *args, **kwargs):
        results = original_autograd_grad(outputs, inputs, *args, **kwargs)
        return tuple(r.cpu() if r is not None else r for r in results)

    mp.setattr(torch.Tensor, "grad", property(grad, original_grad.__set__, original_grad.__delete__))
    mp.setattr(torch.autograd, "grad", autograd_grad)


#: the binary ops of conformance/testlib/ops.py and the operators spelling them: (owner, attribute) pairs
_BINARY_FUNCTIONS = ("add", "sub", "mul", "div", "maximum", "atan2", "where", "matmul", "dot", "outer", "einsum", "cat", "stack")
_BINARY_METHODS = (
    "add", "sub", "mul", "div", "maximum", "atan2", "where", "matmul", "dot", "outer",
    "add_", "sub_", "mul_", "div_", "__add__", "__radd__", "__iadd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
    "__imul__", "__truediv__", "__rtruediv__", "__matmul__", "__rmatmul__",
)  # fmt: skip


def _tensors_in(args) -> list[torch.Tensor]:
    found = []
    for a in args:
        if isinstance(a, torch.Tensor):
            found.append(a)
        elif isinstance(a, (list, tuple)):
            found.extend(t for t in a if isinstance(t, torch.Tensor))
    return found


def _patch_binary_ops(mp, transform) -> None:
    """Wrap every binary op so that ``transform(args, kwargs)`` sees (and may rewrite or refuse) its arguments first."""
    for owner, names in ((torch, _BINARY_FUNCTIONS), (torch.Tensor, _BINARY_METHODS)):
        for name in names:
            original = getattr(owner, name)

            def op(*args, _original=original, **kwargs):
                args, kwargs = transform(args, kwargs)
                return _original(*args, **kwargs)

            mp.setattr(owner, name, functools.wraps(original)(op))


def _moved(value, device):
    if isinstance(value, torch.Tensor) and value.device.type == "cpu":
        return value.to(device)
    if isinstance(value, list):
        return [_moved(v, device) for v in value]
    if isinstance(value, tuple):
        return tuple(_moved(v, device) for v in value)
    return value


def _mixed_devices_move_the_cpu_operand(mp):
    """A binary op mixing a non-CPU tensor with a CPU tensor silently moves the CPU one instead of raising."""

    def transform(args, kwargs):
        off_cpu = [t for t in _tensors_in(args) if t.device.type != "cpu"]
        if not off_cpu:
            return args, kwargs
        return tuple(_moved(a, off_cpu[0].device) for a in args), kwargs

    _patch_binary_ops(mp, transform)


def _zero_dim_cpu_operands_are_refused(mp):
    """A binary op of a non-CPU tensor and a 0-dim CPU tensor raises, as if the 0-dim tensor were any CPU tensor."""

    def transform(args, kwargs):
        tensors = _tensors_in(args)
        if _off_cpu(*tensors) and any(t.device.type == "cpu" and t.dim() == 0 for t in tensors):
            raise RuntimeError("Expected all tensors to be on the same device, but found a 0-dim cpu tensor (mutant)")
        return args, kwargs

    _patch_binary_ops(mp, transform)


def _moves_onto_a_device_detach(mp):
    """``Tensor.to()`` onto a non-CPU device returns a detached copy: no grad_fn, no gradient back to the CPU tensor."""
    original = torch.Tensor.to

    def to(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if result is not self and result.device != self.device and result.device.type != "cpu":
            return result.detach()
        return result

    mp.setattr(torch.Tensor, "to", to)


MUTANTS = (
    Mutant("grad_fn_is_wrapped_off_cpu", ("XDEV-1",), "Tensor.grad_fn of a non-CPU tensor answers a wrapper node of another class", _grad_fn_is_wrapped_off_cpu),
    Mutant(
        "inplace_skips_the_version_counter_off_cpu",
        ("XDEV-2",),
        "in-place methods (add_, mul_, fill_, copy_, ...) of a non-CPU tensor do not bump its version counter",
        _inplace_skips_the_version_counter_off_cpu,
    ),
    Mutant(
        "backward_retains_the_graph_off_cpu",
        ("XDEV-3",),
        "Tensor.backward() of a non-CPU tensor keeps the graph by default, so a second backward does not raise",
        _backward_retains_the_graph_off_cpu,
    ),
    Mutant("sum_accumulates_in_float32_off_cpu", ("XDEV-4",), "Tensor.sum() of a non-CPU float64 tensor accumulates in float32", _sum_accumulates_in_float32_off_cpu),
    Mutant(
        "grads_of_non_cpu_leaves_land_on_the_cpu",
        ("XDEV-5",),
        "the gradients of non-CPU leaves (.grad, torch.autograd.grad) are delivered on the CPU",
        _grads_of_non_cpu_leaves_land_on_the_cpu,
    ),
    Mutant(
        "mixed_devices_move_the_cpu_operand",
        ("XDEV-6",),
        "a binary op mixing a non-CPU tensor and a CPU tensor moves the CPU one to the device instead of raising",
        _mixed_devices_move_the_cpu_operand,
    ),
    Mutant(
        "zero_dim_cpu_operands_are_refused",
        ("XDEV-7",),
        "a binary op of a non-CPU tensor and a 0-dim CPU tensor raises RuntimeError",
        _zero_dim_cpu_operands_are_refused,
    ),
    Mutant("moves_onto_a_device_detach", ("XDEV-8",), "Tensor.to() onto a non-CPU device returns a detached copy", _moves_onto_a_device_detach),
)
