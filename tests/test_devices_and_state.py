"""Device selection (conformance/plugin/devices.py) and the global-state snapshot (conformance/plugin/state.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conformance.plugin import devices, state
from conformance.plugin.devices import DEFAULT_DEVICES, probe, resolve_requested

REPO = Path(__file__).resolve().parent.parent

# ----------------------------------------------------------------------------- resolve_requested


@pytest.mark.parametrize("values", [None, [], [""], [" , "]])
def test_no_device_option_means_the_defaults_not_explicit(values):
    assert resolve_requested(values) == (list(DEFAULT_DEVICES), False)


def test_devices_are_split_stripped_and_deduplicated_in_order():
    assert resolve_requested(["cpu,cuda:1", " mps ", "cpu"]) == (["cpu", "cuda:1", "mps"], True)


def test_single_explicit_device():
    assert resolve_requested(["cpu"]) == (["cpu"], True)


# ----------------------------------------------------------------------------- probe


def test_cpu_is_available():
    status = probe("cpu")
    assert status.available and status.name == "cpu" and status.reason == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_is_unavailable_here_with_a_reason(name):
    status = probe(name)
    assert not status.available
    assert "cuda not available" in status.reason and "is_available() is False" in status.reason


def test_mps_is_unavailable_off_macos_with_a_reason():
    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    status = probe("mps")
    assert not status.available and "mps not available" in status.reason


@pytest.mark.parametrize("name", ["not-a-device", "cpu:x", ""])
def test_malformed_device_string_is_unavailable_with_a_reason(name):
    status = probe(name)
    assert not status.available
    assert repr(name) in status.reason and "not a torch device string" in status.reason


def test_available_devices_lists_cpu_first():
    assert devices.available_devices()[0] == "cpu"
    assert set(devices.available_devices()) <= set(DEFAULT_DEVICES)


# ----------------------------------------------------------------------------- no CUDA initialisation at import


def test_importing_the_plugin_does_not_initialise_cuda():
    script = textwrap.dedent(
        """
        import torch
        import conformance.plugin.devices, conformance.plugin
        from conformance.plugin.devices import probe
        for name in ("cpu", "cuda", "cuda:1", "mps"):
            probe(name)
        print("initialised" if torch.cuda.is_initialized() else "clean")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


# ----------------------------------------------------------------------------- state


def test_capture_reflects_the_current_state():
    snapshot = state.capture()
    assert snapshot == state.AutogradState(
        grad_enabled=torch.is_grad_enabled(),
        inference_mode=torch.is_inference_mode_enabled(),
        anomaly_enabled=torch.is_anomaly_enabled(),
        default_dtype=torch.get_default_dtype(),
    )
    with torch.no_grad():
        assert state.capture().grad_enabled is False
    with torch.inference_mode():
        assert state.capture().inference_mode is True


def test_no_differences_between_equal_snapshots():
    assert state.differences(state.capture(), state.capture()) == []


def test_capture_differences_restore_round_trip():
    before = state.capture()
    try:
        torch.set_grad_enabled(False)
        torch.set_anomaly_enabled(True)
        torch.set_default_dtype(torch.float64)
        changed = state.capture()
        assert state.differences(before, changed) == [
            "grad_enabled: True -> False",
            "anomaly_enabled: False -> True",
            "default_dtype: torch.float32 -> torch.float64",
        ]
    finally:
        state.restore(before)
    assert state.capture() == before
    assert state.differences(before, state.capture()) == []


def test_inference_mode_change_is_reported():
    before = state.capture()
    with torch.inference_mode():  # which also turns grad mode off
        assert state.differences(before, state.capture()) == [
            "grad_enabled: True -> False",
            "inference_mode: False -> True",
        ]


def test_a_leaked_inference_mode_is_undone():
    """A compiled program can leave the process in inference mode (seen on torch 2.13 with aot_eager): restore()
    switches it off again, so that one leaking test does not poison every later one."""
    before = state.capture()
    leaked = torch._C._InferenceMode(True)
    leaked.__enter__()  # entered and never left: a leak
    assert torch.is_inference_mode_enabled()
    state.restore(before)
    assert state.capture() == before
    assert not torch.ones(1).is_inference()
