"""What ran: the torch build, accelerator libraries, Python, platform, hypothesis settings, devices.

The plugin collects this at the end of a run and hands it to the report builder
(:func:`conformance.reporting.report.build_report`), which imports no torch; it
becomes the report's ``environment`` object (``docs/report-schema.md``).
"""

from __future__ import annotations

import platform
from typing import Mapping

import hypothesis
import torch

from .. import emulator
from .backends import backend_entries
from .devices import DeviceStatus

__all__ = ["collect_environment"]


def _device_entry(name: str, status: DeviceStatus) -> dict:
    entry = {"available": status.available, "reason": status.reason, "name": None}
    if not status.available:
        return entry
    kind = torch.device(name).type
    if kind == "cpu":
        entry["name"] = platform.processor() or platform.machine() or None
    elif kind == "cuda":
        entry["name"] = torch.cuda.get_device_name(torch.device(name))
    elif kind == emulator.DEVICE_TYPE and emulator.is_loaded():
        entry["name"] = emulator.DEVICE_NAME
    return entry


def collect_environment(device_status: Mapping[str, DeviceStatus], *, profile: str, seed: object = None) -> dict:
    """The report's ``environment``; ``device_status``: the run's devices, as probed (:func:`conformance.plugin.devices.probe`)."""
    try:
        import numpy

        numpy_version = numpy.__version__
    except ImportError:  # pragma: no cover - numpy is a dependency, but torch runs without it
        numpy_version = None
    # by the device string's kind: a device this torch cannot name (``emu`` where the emulator did not load) is no
    # torch.device
    cuda_present = any(d.split(":")[0] == "cuda" and status.available for d, status in device_status.items())
    return {
        "torch": torch.__version__,
        "torch_git": getattr(torch.version, "git_version", None),
        "torch_debug": bool(getattr(torch.version, "debug", False)),
        "torch_cuda": torch.version.cuda,
        "torch_hip": getattr(torch.version, "hip", None),
        # cuDNN is only loaded (never a device initialised) when a CUDA device is in use anyway.
        "cudnn": torch.backends.cudnn.version() if cuda_present else None,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "numpy": numpy_version,
        "hypothesis": hypothesis.__version__,
        "hypothesis_profile": profile,
        "hypothesis_seed": None if seed is None else str(seed),
        "hypothesis_derandomize": bool(hypothesis.settings.get_profile(profile).derandomize),
        "device_status": {name: _device_entry(name, status) for name, status in device_status.items()},
        "backends": backend_entries(),
    }
