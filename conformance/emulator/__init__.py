"""The emulated accelerator: ``--device emu``, a CPU-backed device of a non-CPU device type.

It is registered through PyTorch's own out-of-tree backend mechanism, the
PrivateUse1 dispatch key (https://pytorch.org/tutorials/advanced/privateuseone.html):

* ``emu_backend.cpp``, built with :func:`torch.utils.cpp_extension.load` into a
  plain shared library (no Python module), registers an allocator, a device guard,
  the accelerator hooks and one boxed fallback kernel that runs every operator's
  CPU kernel on CPU aliases of the device tensors;
* :func:`torch.utils.rename_privateuse1_backend` names the device ``emu``,
  :func:`torch._register_device_module` gives it a ``torch.emu`` module, and
  :func:`torch.utils.generate_methods_for_privateuse1_backend` adds
  ``Tensor.emu()``, ``Tensor.is_emu`` and ``Module.emu()``.

Autograd sits above the backend, so every clause exercises PyTorch's real
autograd engine on tensors whose ``device.type`` is ``"emu"``.  Like a vendor's
package, nothing happens at import: :func:`load` registers the device, on first
request, once per process.  Where it cannot (torch older than 2.1, no C++
compiler, the PrivateUse1 key already taken by another backend) :func:`load`
raises :class:`EmulatorUnavailable` with the reason, and the device is reported
unavailable like an absent CUDA.

Load it before the process's first ``backward()``: the autograd engine sizes its
per-device worker pool then, and a device type registered later has no worker
(an internal assert in ``engine.cpp``).  The plugin loads it in ``pytest_configure``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sysconfig
from pathlib import Path

__all__ = ["DEVICE_TYPE", "MIN_TORCH", "EmulatorUnavailable", "load", "is_loaded", "library_path"]

#: The device type the emulator registers (``torch.device("emu")``).
DEVICE_TYPE = "emu"
#: What the report names the device (``environment.device_status.emu.name``).
DEVICE_NAME = "autograd-conformance emulated accelerator (PrivateUse1, host memory, CPU kernels)"
#: The oldest torch line the emulator builds on (the C++ API it uses: the PrivateUse1
#: hooks interface, ``rename_privateuse1_backend``, generated methods).
MIN_TORCH = (2, 1)
SOURCE = Path(__file__).with_name("emu_backend.cpp")

_state: dict[str, object] = {}


class EmulatorUnavailable(RuntimeError):
    """The emulated device cannot be registered in this process; ``str()`` says why."""


class _EmuModule:
    """``torch.emu``: what torch and the suite ask of a device module.

    The device computes synchronously on the host, so synchronizing has nothing to
    wait for (it counts its calls, for the benchmarks' self-test);
    random numbers for it are drawn by the CPU generator (the fallback runs the
    CPU kernels), so seeding the CPU generator seeds it.
    """

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def is_initialized() -> bool:
        return True

    @staticmethod
    def device_count() -> int:
        return 1

    @staticmethod
    def current_device() -> int:
        return 0

    #: How often torch.emu.synchronize() was called (the benchmarks' self-test checks they synchronize).
    synchronize_calls = 0

    @classmethod
    def synchronize(cls, device=None) -> None:
        cls.synchronize_calls += 1

    @staticmethod
    def manual_seed_all(seed: int) -> None:
        return None

    @staticmethod
    def manual_seed(seed: int) -> None:
        return None

    @staticmethod
    def _is_in_bad_fork() -> bool:
        return False

    # What torch.utils.checkpoint asks of the accelerator's module: its autocast state (torch.get_autocast_dtype
    # asserts the module names its autocast dtypes) and, to replay dropout, the device's RNG state in the device's
    # context.  The CPU generator draws the device's random numbers, so its state is the device's.

    @staticmethod
    def get_amp_supported_dtype():
        import torch

        return [torch.float16, torch.bfloat16]

    @staticmethod
    def is_bf16_supported() -> bool:
        return True

    # Torch 2.1 to 2.3 read and set the device's autocast state through its module (later ones in ATen directly).

    @staticmethod
    def is_autocast_enabled() -> bool:
        import torch

        return torch.ops.emu.is_autocast_enabled()

    @staticmethod
    def set_autocast_enabled(enabled: bool) -> None:
        import torch

        torch.ops.emu.set_autocast_enabled(enabled)

    @staticmethod
    def get_autocast_dtype():
        import torch

        return torch.ops.emu.get_autocast_dtype().dtype

    @staticmethod
    def set_autocast_dtype(dtype) -> None:
        import torch

        torch.ops.emu.set_autocast_dtype(dtype)

    @staticmethod
    def device(index=None):
        return contextlib.nullcontext()

    @staticmethod
    def get_rng_state(device=None):
        import torch

        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state, device=None) -> None:
        import torch

        torch.set_rng_state(state)


def _torch_line() -> tuple[int, int]:
    import torch

    match = re.match(r"(\d+)\.(\d+)", torch.__version__)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def is_loaded() -> bool:
    return _state.get("loaded") is True


def library_path() -> str:
    """Where the compiled backend library lives (empty before :func:`load`)."""
    return str(_state.get("library", ""))


def load() -> None:
    """Register the ``emu`` device in this process (idempotent); raises :class:`EmulatorUnavailable`."""
    if _state.get("loaded") is True:
        return
    if "error" in _state:
        raise EmulatorUnavailable(_state["error"])
    try:
        _register()
    except EmulatorUnavailable as exc:
        _state["error"] = str(exc)
        raise
    _state["loaded"] = True


def _register() -> None:
    import torch

    line = _torch_line()
    if line < MIN_TORCH:
        raise EmulatorUnavailable(
            f"the emulated device needs torch >= {MIN_TORCH[0]}.{MIN_TORCH[1]} (its PrivateUse1 hooks API); "
            f"this is torch {torch.__version__}"
        )
    taken = torch._C._get_privateuse1_backend_name()
    if taken not in ("privateuseone", DEVICE_TYPE):
        raise EmulatorUnavailable(
            f"the PrivateUse1 dispatch key is already taken by the {taken!r} backend in this process"
        )
    _build_and_load_library()
    if taken != DEVICE_TYPE:
        torch.utils.rename_privateuse1_backend(DEVICE_TYPE)
    if not hasattr(torch, DEVICE_TYPE):
        torch._register_device_module(DEVICE_TYPE, _EmuModule())
    if not hasattr(torch.Tensor, f"is_{DEVICE_TYPE}"):
        torch.utils.generate_methods_for_privateuse1_backend(for_storage=True)


def _build_and_load_library() -> None:
    import torch
    from torch.utils import cpp_extension

    # One build per torch version: the extension cache is keyed by name only.
    name = "conformance_emu_" + re.sub(r"[^0-9A-Za-z]+", "_", torch.__version__)
    build_dir = Path(os.environ.get("CONFORMANCE_EMU_BUILD_DIR") or _default_build_root()) / name
    build_dir.mkdir(parents=True, exist_ok=True)
    # cpp_extension runs `ninja`; the `ninja` wheel puts it beside this interpreter, which
    # is not on PATH when a virtualenv's python is run without activating it.
    scripts = sysconfig.get_path("scripts")
    if scripts and scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
    try:
        library = cpp_extension.load(
            name=name,
            sources=[str(SOURCE)],
            build_directory=str(build_dir),
            is_python_module=False,
            extra_cflags=["-O1", "-w"],
            verbose=bool(os.environ.get("CONFORMANCE_EMU_VERBOSE")),
        )
    except Exception as exc:  # noqa: BLE001 - a build that fails for any reason means "unavailable"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EmulatorUnavailable(
            f"building the emulated device's C++ backend failed ({type(exc).__name__}: {first_line}); "
            f"set CONFORMANCE_EMU_VERBOSE=1 to see the compiler"
        ) from exc
    # load() returns the library's path on some torch versions and nothing on others
    _state["library"] = library if isinstance(library, str) else str(build_dir / f"{name}.so")


def _default_build_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "autograd-conformance" / "emu"
