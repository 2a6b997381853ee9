"""Which torch devices the suite runs on.

Nothing here touches an accelerator at import time: availability is probed on
first use, and a device that is merely *auto-detected* (``cuda``, ``mps``) is
never initialised unless its availability query says it exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from .. import emulator

__all__ = ["DEFAULT_DEVICES", "REAL_ACCELERATORS", "DeviceStatus", "available_devices", "probe", "resolve_requested", "status_in_run"]

#: Real accelerators torch detects by itself; each skips when absent.
REAL_ACCELERATORS = ("cuda", "mps")
#: Probed when no ``--device`` is given: the CPU always runs, the real accelerators when
#: present, and the emulated device (``conformance/emulator``) where none is, so that every
#: run has a non-CPU device.
DEFAULT_DEVICES = ("cpu", *REAL_ACCELERATORS, emulator.DEVICE_TYPE)


@dataclass(frozen=True)
class DeviceStatus:
    name: str
    available: bool
    reason: str = ""  # why it is unavailable


def _accelerator_module(kind: str):
    if kind == "mps":
        return getattr(torch.backends, "mps", None)
    return getattr(torch, kind, None)


@lru_cache(maxsize=None)
def probe(name: str) -> DeviceStatus:
    """Availability of a device string such as ``cpu``, ``cuda``, ``cuda:1``, ``mps``."""
    if name.split(":")[0] == emulator.DEVICE_TYPE:
        try:
            emulator.load()  # registers the device type on first request
        except emulator.EmulatorUnavailable as exc:
            return DeviceStatus(name, False, f"{name} not available: {exc}")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        return DeviceStatus(name, False, f"{name!r} is not a torch device string ({exc})")
    kind = device.type
    if kind == "cpu":
        return DeviceStatus(name, True)
    module = _accelerator_module(kind)
    if module is not None and hasattr(module, "is_available"):
        if not module.is_available():
            built = getattr(module, "is_built", None)
            detail = " (this torch build has no support for it)" if callable(built) and not built() else ""
            return DeviceStatus(name, False, f"{kind} not available: torch.{'backends.' if kind == 'mps' else ''}{kind}.is_available() is False{detail}")
        count = getattr(module, "device_count", None)
        if device.index is not None and callable(count) and device.index >= count():
            return DeviceStatus(name, False, f"{name} not available: only {count()} {kind} device(s)")
        return DeviceStatus(name, True)
    # A backend torch has no availability query for (e.g. an out-of-tree vendor device):
    # the only honest probe is to allocate on it.
    try:
        torch.empty(0, device=device)
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
        return DeviceStatus(name, False, f"{name} not available: allocating on it failed ({type(exc).__name__}: {exc})")
    return DeviceStatus(name, True)


def status_in_run(name: str, explicit: bool) -> DeviceStatus:
    """``name``'s status in a run whose devices were named (``explicit``) or are the defaults.

    Among the defaults the emulated device stands in for a real accelerator: it runs
    only where none is present (and is then never built), so a GPU machine's default
    run is ``cpu`` and ``cuda``.
    """
    if not explicit and name == emulator.DEVICE_TYPE:
        present = [kind for kind in REAL_ACCELERATORS if probe(kind).available]
        if present:
            return DeviceStatus(
                name,
                False,
                f"the emulated device runs by default only where no accelerator is; {', '.join(present)} is here "
                f"(ask for it with --device {name})",
            )
    return probe(name)


def available_devices() -> list[str]:
    return [name for name in DEFAULT_DEVICES if status_in_run(name, explicit=False).available]


def resolve_requested(values: list[str] | None) -> tuple[list[str], bool]:
    """Parse repeated/comma-separated ``--device`` values.

    Returns ``(devices, explicit)``; with no values the defaults are returned
    and ``explicit`` is False (absent ones are then skipped, not errors).
    """
    names = [part.strip() for value in values or () for part in value.split(",") if part.strip()]
    if not names:
        return list(DEFAULT_DEVICES), False
    return list(dict.fromkeys(names)), True
