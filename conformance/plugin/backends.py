"""Out-of-tree device backends: the vendor packages a run imports before it probes devices.

A vendor's backend is a Python package that registers its device when imported
(``torch_npu``, ``intel_extension_for_pytorch``, ...).  A run imports it from
``--backend MODULE`` or from the ``autograd_conformance.backends`` entry point
group (a package lists ``module = "..."`` there to be imported by every run of
an environment it is installed in), before the ``--device`` strings are parsed,
so ``--device npu`` names a device torch knows.  Torch's own autoloading
(the ``torch.backends`` entry point group, torch >= 2.5) happens when torch is
imported, before any of this; the report lists those entry points too.

The report's ``environment.backends`` records, for each backend: the module,
the distribution that provides it and its version, and the device type torch
names the PrivateUse1 key after loading.
"""

from __future__ import annotations

import importlib
from importlib import metadata

import torch

__all__ = ["ENTRY_POINT_GROUP", "BackendError", "import_backends", "backend_entries"]

#: Packages list a module here to be imported by every conformance run.
ENTRY_POINT_GROUP = "autograd_conformance.backends"
#: Torch's own device-extension autoload group (torch >= 2.5).
TORCH_AUTOLOAD_GROUP = "torch.backends"

_loaded: dict[str, dict] = {}


class BackendError(Exception):
    """A backend module named for the run could not be imported; ``str()`` says which and why."""


def _entry_points(group: str) -> list:
    try:
        return list(metadata.entry_points(group=group))
    except TypeError:  # pragma: no cover - Python < 3.10 API
        return list(metadata.entry_points().get(group, ()))


def _distribution_of(module_name: str) -> tuple[str | None, str | None]:
    top = module_name.split(".")[0]
    try:
        names = metadata.packages_distributions().get(top) or []
    except Exception:  # noqa: BLE001 - metadata of broken installs must not break the run
        names = []
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None, None


def import_backends(modules: list[str]) -> list[dict]:
    """Import ``modules`` and the entry point group's modules; returns their report entries.

    Raises :class:`BackendError` when a module named on the command line cannot be
    imported (a usage error: the run would test the wrong thing).
    """
    wanted = [(name, "--backend") for name in modules]
    wanted += [(ep.value.split(":")[0], f"entry point {ep.name!r}") for ep in _entry_points(ENTRY_POINT_GROUP)]
    for name, origin in wanted:
        if name in _loaded:
            continue
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any import failure is reported with its cause
            raise BackendError(f"backend module {name!r} ({origin}) failed to import: {type(exc).__name__}: {exc}") from exc
        distribution, version = _distribution_of(name)
        _loaded[name] = {
            "module": name,
            "origin": origin,
            "distribution": distribution,
            "version": getattr(module, "__version__", None) or version,
        }
    return [dict(entry) for entry in _loaded.values()]


def backend_entries() -> list[dict]:
    """What the report records: imported backend modules, torch's autoload entry points, the PrivateUse1 name."""
    from .. import emulator

    entries = [dict(entry) for entry in _loaded.values()]
    if emulator.is_loaded() and not any(e["module"].startswith("conformance.emulator") for e in entries):
        from .. import __version__

        entries.append(
            {"module": "conformance.emulator", "origin": "--device emu", "distribution": "autograd-conformance", "version": __version__}
        )
    for ep in _entry_points(TORCH_AUTOLOAD_GROUP):
        dist = getattr(ep, "dist", None)
        entries.append(
            {
                "module": ep.value.split(":")[0],
                "origin": f"torch autoload entry point {ep.name!r}",
                "distribution": getattr(dist, "name", None),
                "version": getattr(dist, "version", None),
            }
        )
    # the name a loaded backend gave the PrivateUse1 key ("privateuseone" while none has)
    name = torch._C._get_privateuse1_backend_name() if hasattr(torch._C, "_get_privateuse1_backend_name") else None
    for entry in entries:
        entry["privateuse1_device_type"] = name if name != "privateuseone" else None
    return entries
