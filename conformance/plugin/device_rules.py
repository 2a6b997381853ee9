"""Declared device rules: ``@pytest.mark.devices(...)`` and ``@pytest.mark.needs_other_device(...)``."""

from __future__ import annotations

import pytest
import torch

# Some tests (or some parametrized forms of a test) check nothing on some devices:
# `t.cuda()` needs CUDA, `t.numpy()` refusing a non-CPU tensor needs one, and
# `y.to(other device)` is a no-op on the CPU. They declare it, and the plugin
# skips them at collection, so the report says "not exercised on cpu" instead of
# a silent pass or a skip hidden in the test body.  The rules look only at the
# device kind under test (torch.device(name).type), so a new device kind (an
# emulated non-CPU device, a vendor backend) runs every "non-cpu" test.

DEVICES_MARKER = "devices"
NEEDS_OTHER_DEVICE_MARKER = "needs_other_device"
#: In ``@pytest.mark.devices(...)``: every device kind but the CPU.
NON_CPU = "non-cpu"


def _kind_matches(kind: str, wanted: tuple[str, ...]) -> bool:
    return any(kind != "cpu" if w == NON_CPU else kind == w for w in wanted)


def device_rule_skip_reason(item: pytest.Item) -> str | None:
    """Why a declared device rule keeps ``item`` from running on its device, or None if none does."""
    callspec = getattr(item, "callspec", None)
    device_name = callspec.params.get("device") if callspec else None
    if device_name is None:
        return None
    try:
        kind = torch.device(device_name).type
    except (RuntimeError, ValueError):
        return None  # not a device string: the device fixture reports it
    for mark in item.iter_markers(DEVICES_MARKER):
        if not mark.args:
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{DEVICES_MARKER}() names no device kind")
        if not _kind_matches(kind, tuple(mark.args)):
            why = mark.kwargs.get("reason")
            return f"not exercised on {device_name}: only on {' or '.join(mark.args)} devices" + (f" ({why})" if why else "")
    for mark in item.iter_markers(NEEDS_OTHER_DEVICE_MARKER):
        if kind == "cpu":
            why = mark.args[0] if mark.args else mark.kwargs.get("reason")
            return f"not exercised on {device_name}: needs a second device kind" + (f" ({why})" if why else "")
    return None


@pytest.hookimpl(specname="pytest_configure")
def pytest_configure_device_rules(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{DEVICES_MARKER}(*kinds, reason=None): run only on these device kinds ('cuda', 'mps', ... or "
        f"'{NON_CPU}'); skipped at collection on the others",
    )
    config.addinivalue_line(
        "markers",
        f"{NEEDS_OTHER_DEVICE_MARKER}(why): moves a tensor to a second device kind (the CPU, from the device "
        "under test), so it checks nothing on the CPU; skipped at collection there",
    )


@pytest.hookimpl(specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_device_rules(items: list[pytest.Item]) -> None:
    for item in items:
        reason = device_rule_skip_reason(item)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
