"""Deliberately broken variants of the emulated device, to prove the suite catches a broken backend.

Each variant is the ``emu`` device (``conformance/emulator``) plus a few kernels
registered through torch's own dispatcher for the PrivateUse1 keys only:
``PrivateUse1`` (a backend kernel, which wins over the emulator's boxed
fallback) or ``AutogradPrivateUse1`` (a vendor's own autograd kernel, which wins
over torch's ``VariableType`` kernel).  CPU tensors never reach them, so the
clauses a variant breaks must fail on ``emu`` and still hold on ``cpu``.  Each
one models a mistake a real backend bring-up makes; ``breaks`` names the
clauses whose tests must fail on the device (``tests/test_broken_backends.py``
checks it).  The kernels are Python functions registered with
``torch.library``, but for one C++ kernel (``detach`` for
``gradients_left_on_cpu``, compiled on first use like the emulator and cached
beside it; see ``_HOST_DETACH_SOURCE`` for why).

Loaded as a pytest plugin: ``pytest -p tests.broken_backends --broken-backend
NAME --device cpu,emu``.  The kernels are registered when pytest configures the
run (after loading the emulator) and removed when it ends; without
``--broken-backend`` this plugin does nothing.  Like a mutant run, a broken
backend run draws with the short ``mutation`` hypothesis profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pytest
import torch

from tests.mutants import load_mutation_profile

__all__ = ["BROKEN_BACKENDS", "BrokenBackend", "register", "unregister"]

_KEYS = torch._C.DispatchKey


@dataclass(frozen=True)
class BrokenBackend:
    """One broken variant of the emulated device.

    ``install(lib)`` registers its kernels on ``lib`` (a ``torch.library.Library("aten",
    "IMPL")``), only for the PrivateUse1 dispatch keys; ``breaks`` names the clauses
    whose tests must fail on the device while passing on the CPU.
    """

    name: str
    breaks: tuple[str, ...]
    description: str
    install: Callable[[torch.library.Library], None]


# ----------------------------------------------------------------------------- calling the kernel a variant replaces


def _as_tensor_arguments(op: torch._ops.OpOverload, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``args``/``kwargs`` with every Python number passed for a ``Tensor`` parameter made a 0-dim CPU tensor.

    A Python kernel receives the number ``t.add_(1)`` was called with, not the wrapped
    0-dim tensor, and a boxed call refuses a number for a ``Tensor`` parameter.  The
    tensor gets the dtype type promotion gives the number, so results keep their dtype.
    """
    tensors = [value for value in (*args, *kwargs.values()) if isinstance(value, torch.Tensor)]

    def wrapped(value):
        if isinstance(value, (bool, int, float, complex)) and not isinstance(value, torch.Tensor):
            dtype = torch.result_type(tensors[0], value) if tensors else None
            return torch.tensor(value, dtype=dtype)
        return value

    tensor_params = {arg.name for arg in op._schema.arguments if isinstance(arg.type, torch.TensorType)}
    positional = [arg.name for arg in op._schema.arguments if not arg.kwarg_only]
    args = tuple(wrapped(value) if name in tensor_params else value for name, value in zip(positional, args))
    kwargs = {name: wrapped(value) if name in tensor_params else value for name, value in kwargs.items()}
    return args, kwargs


class _Original:
    """The kernel an override replaces (looked up before registering it), callable with a dispatch key set."""

    def __init__(self, op: torch._ops.OpOverload, key: str) -> None:
        self.op = op
        self.kernel = torch.library.get_kernel(op, key)

    def __call__(self, keys: torch._C.DispatchKeySet, *args: Any, **kwargs: Any) -> Any:
        args, kwargs = _as_tensor_arguments(self.op, args, kwargs)
        return self.kernel.call_boxed(keys, *args, **kwargs)


def _overloads(*names: str) -> list[torch._ops.OpOverload]:
    """Every overload of the named aten ops (``"add_"``), or the one named (``"add.out"``)."""
    found = []
    for name in names:
        packet_name, _, overload = name.partition(".")
        packet = getattr(torch.ops.aten, packet_name)
        found += [getattr(packet, overload)] if overload else [getattr(packet, o) for o in packet.overloads()]
    # TorchScript's own overloads (add_.t on lists) are not dispatcher operators
    return [op for op in found if _has_overload(op)]


def _has_overload(op: torch._ops.OpOverload) -> bool:
    try:
        torch.library.get_kernel(op, "CPU")
    except RuntimeError:
        return False
    return True


def _below_autograd(op: torch._ops.OpOverload, *args: Any, **kwargs: Any) -> Any:
    """The op as the backend computes it, recording no graph (what an autograd kernel calls under it)."""
    with torch._C._AutoDispatchBelowAutograd():
        return op(*args, **kwargs)


def _to_cpu(t):
    """A tensor argument copied to the CPU without recording; None as it is."""
    return t if not isinstance(t, torch.Tensor) else _below_autograd(torch.ops.aten._to_copy.default, t, device="cpu")


# ----------------------------------------------------------------------------- 1. BatchNorm running statistics


def _install_batchnorm_running_stats_not_written_back(lib: torch.library.Library) -> None:
    # BatchNorm reaches a backend as aten::native_batch_norm (nn.BatchNorm -> F.batch_norm ->
    # torch.batch_norm -> _batch_norm_impl_index, composite, -> native_batch_norm).
    def native_batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps):
        # The kernel normalises correctly but updates copies of the running statistics.
        results = torch.ops.aten.native_batch_norm.default(
            _to_cpu(input), _to_cpu(weight), _to_cpu(bias), _to_cpu(running_mean), _to_cpu(running_var), training, momentum, eps
        )
        return tuple(result.to(input.device) for result in results)

    lib.impl("native_batch_norm", native_batch_norm, "PrivateUse1")


# ----------------------------------------------------------------------------- 2. copies of device tensors


def _install_device_copy_drops_the_graph(lib: torch.library.Library) -> None:
    # A vendor's autograd kernel for _to_copy (y.cpu(), y.to('cpu'), y.to(dtype), y.double() of a
    # device tensor) that copies and forgets to record the copy: the result is detached.
    def to_copy(self, **kwargs):
        return _below_autograd(torch.ops.aten._to_copy.default, self, **kwargs)

    lib.impl("_to_copy", to_copy, "AutogradPrivateUse1")


# ----------------------------------------------------------------------------- 3. version counter

#: the ops behind the suite's in-place forms (conformance/testlib/inplace_ops.py) and the in-place ops
#: its other tests call; every overload of each, and the out= overloads of the out= forms
INPLACE_OPS = (
    "add_", "sub_", "mul_", "div_", "neg_", "pow_", "sin_", "exp_", "tanh_", "sigmoid_", "clamp_", "zero_",
    "fill_", "copy_", "masked_fill_", "relu_", "normal_", "uniform_", "index_put_", "mul.out", "add.out",
    "neg.out", "sin.out", "clamp.out",
)  # fmt: skip


def _install_inplace_kernels_skip_version_bump(lib: torch.library.Library) -> None:
    # A vendor's autograd kernel for in-place ops: records the graph like torch's (it calls
    # VariableType) but dispatches straight to the backend, skipping the ADInplaceOrView kernel
    # that bumps the version counter.
    def skipping_the_version_bump(original: _Original):
        def kernel(keys, *args, **kwargs):
            with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(_KEYS.ADInplaceOrView)):
                return original(keys.remove(_KEYS.ADInplaceOrView), *args, **kwargs)

        return kernel

    for op in _overloads(*INPLACE_OPS):
        original = _Original(op, "AutogradPrivateUse1")
        lib.impl(op, skipping_the_version_bump(original), "AutogradPrivateUse1", with_keyset=True)


# ----------------------------------------------------------------------------- 4. gradients on the host


def _accumulating() -> bool:
    """Whether the autograd engine is running an AccumulateGrad node (writing some leaf's .grad)."""
    return isinstance(torch._C._current_autograd_node(), torch._C._functions.AccumulateGrad)


#: AccumulateGrad adopts the first gradient with ``new_grad.detach()``.  A Python kernel for detach
#: cannot stand in for torch's (the tensor it returns already has a Python object, and torch then
#: refuses ``nn.Parameter(t)`` for every device tensor ``t``), so this one is C++: when the engine
#: runs an AccumulateGrad node it returns a CPU copy, else it detaches as torch does.
_HOST_DETACH_SOURCE = r"""
#include <ATen/ATen.h>
#include <torch/library.h>
#include <torch/csrc/autograd/functions/accumulate_grad.h>
#include <torch/csrc/autograd/node.h>
#include <memory>

namespace {
at::Tensor detach_to_the_host_when_accumulating(const at::Tensor& self) {
  auto node = torch::autograd::get_current_node();
  if (node && dynamic_cast<torch::autograd::AccumulateGrad*>(&*node) != nullptr) {
    return self.to(at::kCPU);
  }
  return at::Tensor(self.getIntrusivePtr()->shallow_copy_and_detach(0, false));
}
std::unique_ptr<torch::Library> g_library;
}  // namespace

void install() {
  g_library = std::make_unique<torch::Library>(
      torch::Library::IMPL, "aten", std::make_optional(c10::DispatchKey::PrivateUse1), __FILE__, __LINE__);
  g_library->impl("detach", TORCH_FN(detach_to_the_host_when_accumulating));
}

void uninstall() { g_library.reset(); }
"""


def _host_detach_extension():
    """The compiled C++ detach kernel (built once per torch version, cached beside the emulator's build)."""
    import os
    import re
    from pathlib import Path

    from torch.utils import cpp_extension

    from conformance.emulator import _default_build_root

    name = "broken_backend_host_detach_" + re.sub(r"[^0-9A-Za-z]+", "_", torch.__version__)
    build_dir = Path(os.environ.get("CONFORMANCE_EMU_BUILD_DIR") or _default_build_root()) / name
    build_dir.mkdir(parents=True, exist_ok=True)
    return cpp_extension.load_inline(
        name=name, cpp_sources=[_HOST_DETACH_SOURCE], functions=["install", "uninstall"],
        build_directory=str(build_dir), extra_cflags=["-O1", "-w"],
    )  # fmt: skip


class _HostDetach:
    """Registers the C++ detach kernel; ``_destroy()`` removes it (it rides along with the variant's Library)."""

    def __init__(self) -> None:
        self.extension = _host_detach_extension()
        self.extension.install()

    def _destroy(self) -> None:
        self.extension.uninstall()


def _install_gradients_left_on_cpu(lib: torch.library.Library) -> None:
    # Accumulation into .grad done on the host and never moved back: inside AccumulateGrad the
    # device's kernels that make a new .grad produce CPU tensors: detach (adopting the first
    # gradient, the C++ kernel above), new_empty_strided then copy_ or clone (copying it, e.g.
    # under create_graph=True), add (a sum recorded under create_graph=True); add_ adds into a
    # .grad left on the host.
    lib._broken_backend_extras = [_HostDetach()]

    def host_clone(original: _Original):
        def kernel(keys, self, **kwargs):
            if not _accumulating():
                return original(keys, self, **kwargs)
            return torch.ops.aten._to_copy.default(self, device="cpu")  # recorded under create_graph=True

        return kernel

    def host_empty(original: _Original):
        def kernel(keys, self, size, stride, **kwargs):
            if not _accumulating():
                return original(keys, self, size, stride, **kwargs)
            options = {k: v for k, v in kwargs.items() if v is not None and k != "device"}
            return torch.empty_strided(size, stride, **{"dtype": self.dtype, **options}, device="cpu")

        return kernel

    def host_add(original: _Original):
        def kernel(keys, self, other, **kwargs):
            if not _accumulating():
                return original(keys, self, other, **kwargs)
            return torch.add(_on_cpu(self), _on_cpu(other), **kwargs)  # recorded under create_graph=True

        return kernel

    def host_add_(original: _Original):
        def kernel(keys, self, other, **kwargs):
            if not _accumulating() or self.device.type != "cpu":
                return original(keys, self, other, **kwargs)
            return self.add_(_on_cpu(other), **kwargs)  # into a .grad already left on the host

        return kernel

    for name, wrap in {"clone": host_clone, "new_empty_strided": host_empty, "add.Tensor": host_add, "add_.Tensor": host_add_}.items():
        for op in _overloads(name):
            lib.impl(op, wrap(_Original(op, "AutogradPrivateUse1")), "AutogradPrivateUse1", with_keyset=True)


def _on_cpu(value):
    """A tensor argument moved to the CPU (differentiably); numbers as they are."""
    return value.cpu() if isinstance(value, torch.Tensor) else value


# ----------------------------------------------------------------------------- the variants


BROKEN_BACKENDS: dict[str, BrokenBackend] = {
    backend.name: backend
    for backend in (
        BrokenBackend(
            "batchnorm_running_stats_not_written_back",
            ("MODULE-5",),
            "native_batch_norm on the device normalises with the batch statistics but updates copies of "
            "running_mean/running_var, so the module's running statistics never change",
            _install_batchnorm_running_stats_not_written_back,
        ),
        BrokenBackend(
            "device_copy_drops_the_graph",
            ("XFER-2", "REQGRAD-6", "XDEV-8"),
            "the device's autograd kernel for _to_copy (y.cpu(), y.to('cpu'), y.to(dtype), y.double() of a "
            "device tensor) copies without recording: the copy does not require grad and has no grad_fn",
            _install_device_copy_drops_the_graph,
        ),
        BrokenBackend(
            "inplace_kernels_skip_version_bump",
            ("INPLACE-4", "INPLACE-5", "DETACH-3", "GRADMODE-16", "XDEV-2"),
            "the device's autograd kernels for in-place ops record the graph but skip the ADInplaceOrView "
            "kernel: in-place writes leave the version counter unchanged (stale saved tensors go unnoticed) "
            "and no longer refuse an inference tensor outside inference mode",
            _install_inplace_kernels_skip_version_bump,
        ),
        BrokenBackend(
            "gradients_left_on_cpu",
            ("LEAF-4", "XFER-2", "ACCUM-5", "XDEV-5"),
            "gradients of device leaves are accumulated on the host and left there: inside AccumulateGrad the "
            "device's detach, clone, new_empty_strided and add return CPU tensors, so .grad is a CPU tensor",
            _install_gradients_left_on_cpu,
        ),
    )
}


def register(name: str) -> torch.library.Library:
    """Load the emulated device and register variant ``name``'s kernels; ``lib._destroy()`` removes them."""
    from conformance import emulator

    emulator.load()
    lib = torch.library.Library("aten", "IMPL")
    BROKEN_BACKENDS[name].install(lib)
    return lib


def unregister(lib: torch.library.Library) -> None:
    """Remove what :func:`register` registered."""
    for extra in getattr(lib, "_broken_backend_extras", ()):
        extra._destroy()
    lib._destroy()


# ----------------------------------------------------------------------------- the plugin

_LIBRARY = pytest.StashKey[torch.library.Library]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--broken-backend", choices=sorted(BROKEN_BACKENDS), help="break the emulated device (see tests/broken_backends.py)")


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("broken_backend")
    if not name:
        return
    from conformance import emulator

    try:
        config.stash[_LIBRARY] = register(name)
    except emulator.EmulatorUnavailable as exc:
        raise pytest.UsageError(f"--broken-backend {name}: the emulated device is unavailable: {exc}") from exc
    load_mutation_profile()


def pytest_unconfigure(config: pytest.Config) -> None:
    lib = config.stash.get(_LIBRARY, None)
    if lib is not None:
        unregister(lib)


def pytest_report_header(config: pytest.Config) -> str | None:
    name = config.getoption("broken_backend")
    return f"BROKEN BACKEND ACTIVE on emu: {name}: {BROKEN_BACKENDS[name].description}" if name else None
