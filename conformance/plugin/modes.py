"""Compiled modes in a run: ``--mode``, the ``mode`` fixture's values, and what makes a compiled pass count.

``--mode eager`` (the default) runs every test's user program op by op;
``--mode compile:BACKEND`` (``eager``, ``aot_eager``, ``inductor``; repeatable)
runs it through ``torch.compile`` (``conformance/testlib/modes.py``).  For each
test in a compiled mode :class:`CompiledModeRuns`

* resets dynamo and its counters first, so that one test's compiled code, guards
  and failures do not change the next test's outcome, and afterwards undoes what
  the test's compilations did to the shared AOTAutograd backend objects (torch <= 2.4
  nests a wrapper per compilation in them until a RecursionError);
* raises the recompile limits for the test (each hypothesis example is a new
  program; the default limit of 8 would silently fall back to eager);
* skips dynamo's measurement of its own guards' latency (a compile metric that
  flushes the CPU cache per compiled frame: a third of ``compile:eager``'s time),
  see :func:`_guard_latency_unmeasured`;
* runs fewer hypothesis examples (:func:`profiles.compiled_max_examples`): each
  costs a compilation; and does not shrink a failing example (each candidate
  would be compiled anew);
* afterwards asks dynamo's counters whether the program really compiled, and
  turns a pass that rests on eager execution into the outcome ``not compiled``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import hypothesis
import pytest
import torch
from packaging.version import Version

from ..testlib.modes import EAGER, MODE_NAMES, Mode, not_compiled_reason, reset_ledger
from . import profiles

__all__ = ["CompiledModeRuns", "NOT_COMPILED", "item_mode", "resolve_modes", "target_unavailable"]

#: the user property a report carries when a compiled pass did not rest on compiled code
NOT_COMPILED = "not compiled"
_NOT_COMPILED_REASON = pytest.StashKey[str]()
#: recompile limits while a compiled test runs: every hypothesis example may be a new program
_RECOMPILE_LIMIT = 1024
#: inductor generates code for these device types only; elsewhere a compiled inductor run has nothing to run
_INDUCTOR_DEVICE_TYPES = ("cpu", "cuda", "xpu", "mps")


#: where inductor keeps its caches (generated code, built kernels, FX graphs) unless TORCHINDUCTOR_CACHE_DIR
#: says otherwise: persistent, so that a second inductor run skips most of the C++ builds
INDUCTOR_CACHE = Path.home() / ".cache" / "autograd-conformance" / "inductor"


def use_persistent_inductor_cache(modes: list[str]) -> None:
    if any(Mode(name).backend == "inductor" for name in modes):
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(INDUCTOR_CACHE))


def resolve_modes(values: list[str] | None) -> list[str]:
    """The run's modes from ``--mode`` values (repeatable, comma-separated), in order; ``["eager"]`` by default."""
    names = [part.strip() for value in values or () for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in MODE_NAMES]
    if unknown:
        raise pytest.UsageError(f"unknown --mode {', '.join(map(repr, unknown))}; known: {', '.join(MODE_NAMES)}")
    if any(name != EAGER for name in names) and Version(Version(torch.__version__).base_version) < Version("2.0"):
        raise pytest.UsageError(f"compiled modes need torch.compile (torch >= 2.0); this is torch {torch.__version__}")
    return list(dict.fromkeys(names)) or [EAGER]


def item_mode(item: pytest.Item) -> str:
    """The execution mode a conformance test runs in (a parameter of its own named ``mode``, such as a
    benchmark's grad mode, is not one: only values the plugin parametrizes, names in MODE_NAMES, count)."""
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get("mode", EAGER) if callspec else EAGER
    return value if isinstance(value, str) and value in MODE_NAMES else EAGER


def target_unavailable(device: str | None, mode: str) -> str | None:
    """Why ``device`` cannot run in ``mode`` at all, or None."""
    if device is None or Mode(mode).backend != "inductor":
        return None
    kind = torch.device(device).type
    if kind not in _INDUCTOR_DEVICE_TYPES:
        return f"not exercised on {device} in {mode}: inductor generates code for {', '.join(_INDUCTOR_DEVICE_TYPES)} only"
    return None


def _aot_autograd_backends() -> list:
    """The registered AOTAutograd backends (``aot_eager``, ...): process-wide objects, [] where torch has none."""
    try:
        from torch._dynamo.backends import registry
        from torch._dynamo.backends.common import AotAutograd

        registry._lazy_import()
        return [backend for backend in registry._BACKENDS.values() if isinstance(backend, AotAutograd)]
    except Exception:  # noqa: BLE001 - a torch without these internals has nothing to isolate
        return []


@contextlib.contextmanager
def _aot_backends_isolated():
    """Undo what a test's compilations did to the AOTAutograd backend objects.

    Up to torch 2.4 each compilation wraps the shared backend's ``bw_compiler`` around the previous one
    (``torch/_dynamo/backends/common.py``, pytorch/pytorch#93935) and ``torch._dynamo.reset()`` does not undo
    it, so after about 490 compilations in one process every new graph's backward raises ``RecursionError``:
    without this, a compiled run on 2.4 fails tests by their position in the run.
    """
    saved = [(backend, dict(backend.kwargs)) for backend in _aot_autograd_backends()]
    try:
        yield
    finally:
        for backend, kwargs in saved:
            backend.kwargs.clear()
            backend.kwargs.update(kwargs)


def _unmeasured_guard_latency(*args, **kwargs) -> float:
    return 0.0


@contextlib.contextmanager
def _guard_latency_unmeasured():
    """Dynamo without its guard-latency measurement for the block.

    After building a frame's guards and checking them once, dynamo (2.6 and later) times one more check after
    flushing the CPU cache (``torch._C._dynamo.guards.profile_guard_manager``), for a compile metric
    (``guard_latency_us``) and a debug log line only: nothing it decides depends on the figure.  The flush costs
    20-45 ms per compiled frame on a 2-core CPU, a third of ``compile:eager``'s time and an eighth of
    ``compile:aot_eager``'s, and dynamo has no setting to turn it off.  The guards themselves are still built and
    checked as always.  Torch without the function: nothing changes.
    """
    from unittest import mock

    import torch._dynamo.guards as guards

    if not callable(getattr(guards, "profile_guard_manager", None)):
        yield
        return
    with mock.patch.object(guards, "profile_guard_manager", _unmeasured_guard_latency):
        yield


@contextlib.contextmanager
def _compiled_test_context(item: pytest.Item, profile: str):
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    reset_ledger()
    config = torch._dynamo.config
    patches = {"suppress_errors": False}
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(config, name):
            patches[name] = _RECOMPILE_LIMIT
    test = getattr(item, "obj", None)
    hypothesis_settings = getattr(test, "_hypothesis_internal_use_settings", None)
    if hypothesis_settings is not None:  # @given reads this attribute each time it runs
        test._hypothesis_internal_use_settings = hypothesis.settings(
            hypothesis_settings,
            max_examples=min(hypothesis_settings.max_examples, profiles.compiled_max_examples(profile, Mode(item_mode(item)).backend)),
            # shrinking a compiled failure recompiles every candidate (minutes for one failure): report it unshrunk
            phases=[phase for phase in hypothesis_settings.phases if phase is not hypothesis.Phase.shrink],
        )
    try:
        with config.patch(patches), _aot_backends_isolated(), _guard_latency_unmeasured():
            yield counters
    finally:
        if hypothesis_settings is not None:
            test._hypothesis_internal_use_settings = hypothesis_settings
        torch._dynamo.reset()


class CompiledModeRuns:
    def __init__(self, profile: str) -> None:
        self.profile = profile

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        if item_mode(item) == EAGER:
            yield
            return
        with _compiled_test_context(item, self.profile) as counters:
            outcome = yield
            if outcome.excinfo is None:
                reason = not_compiled_reason(counters)
                if reason:
                    item.stash[_NOT_COMPILED_REASON] = reason

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        outcome = yield
        report = outcome.get_result()
        reason = item.stash.get(_NOT_COMPILED_REASON, None)
        if call.when == "call" and reason and report.passed and not hasattr(report, "wasxfail"):
            report.outcome = "skipped"
            report.longrepr = (str(item.path), item.location[1] or 0, f"{NOT_COMPILED}: {reason}")
            report.user_properties.append(("conformance_outcome", NOT_COMPILED))
