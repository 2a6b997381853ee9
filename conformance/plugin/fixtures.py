"""A conformance run's fixtures and per-test hooks, registered by ``session.activate`` in a conformance run only.

A dormant session (``activation.py``) never sees them: a user's own ``device``
fixture, grad-mode changes and test ids stay as they are without the plugin.
"""

from __future__ import annotations

import pytest
import torch

from .. import __version__
from ..testlib.modes import EAGER, Mode
from . import state
from .devices import status_in_run
from .run_state import RunState

__all__ = ["RUN"]

#: the session's :class:`RunState`, in ``config.stash``
RUN = pytest.StashKey[RunState]()


@pytest.hookimpl
def pytest_report_header(config: pytest.Config) -> list[str]:
    run = config.stash[RUN]
    return [
        f"autograd-conformance {__version__}: torch {torch.__version__}, {len(run.registry)} clauses, "
        f"devices: {', '.join(run.devices)}, modes: {', '.join(run.modes)}, hypothesis profile: {run.profile}"
    ]


@pytest.hookimpl
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    run = metafunc.config.stash[RUN]
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", run.devices, indirect=True, ids=str, scope="session")
    # Only conformance tests run in compiled modes; an eager-only run keeps the test ids it always had.
    if run.modes != [EAGER] and "mode" in metafunc.fixturenames and run.is_conformance_path(metafunc.definition.path):
        metafunc.parametrize("mode", run.modes, indirect=True, ids=str, scope="session")


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    """The torch device string under test; an absent auto-detected device skips here, lazily."""
    status = status_in_run(request.param, request.config.stash[RUN].explicit_devices)
    if not status.available:
        pytest.skip(status.reason)
    return request.param


@pytest.fixture(scope="session")
def mode(request: pytest.FixtureRequest) -> Mode:
    """The execution mode under test (``conformance/testlib/modes.py``): eager unless ``--mode`` names others."""
    return Mode(getattr(request, "param", EAGER))


@pytest.fixture(autouse=True)
def _every_test_has_a_mode(mode: Mode) -> None:
    """Gives every test a ``mode``, so that a test that ignores it is still run (and judged) in each mode."""


@pytest.fixture(autouse=True)
def _autograd_state_guard():
    """Fail any test that leaves grad mode, inference mode, anomaly mode or the default dtype changed."""
    before = state.capture()
    yield
    changes = state.differences(before, state.capture())
    if changes:
        state.restore(before)
        pytest.fail(
            "test left global autograd state changed: "
            + "; ".join(changes)
            + " (use a context manager or try/finally so the state is restored)",
            pytrace=False,
        )
