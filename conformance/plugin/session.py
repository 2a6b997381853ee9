"""A conformance run's setup, fixtures and parametrization: what the plugin does once a session is one.

``conformance/plugin/__init__.py`` decides (``activation.py``) whether a pytest
session is a conformance run and, only then, calls :func:`activate`, which
imports torch and hypothesis, loads the specs, resolves devices, modes and
expectations, and registers the run's parts with pytest: this module itself
``fixtures.py`` (the ``device`` and ``mode`` fixtures, the autouse state guard,
the device and mode parametrization, the report header), the declared device rules
(``device_rules.py``), and the parts sharing ``run_state.RunState``: collection
rules (``collection.py``), outcome recording (``recording.py``), xdist
gathering (``distributed.py``), the report and verdict (``verdict.py``), the cheap rendering of
expected failures' tracebacks (``tracebacks.py``) and the
compiled-mode runs (``modes.py``).  A dormant session registers none of it.
"""

from __future__ import annotations

from pathlib import Path

import hypothesis
import pytest
import torch

from .. import emulator
from . import device_rules, fixtures, profiles
from ..spec.expectations import DEFAULT_EXPECTATIONS, ExpectationsError, load_expectations
from ..spec.registry import SpecError, load_specs
from .activation import PLUGIN_NAME
from .fixtures import RUN
from .backends import BackendError, import_backends
from .collection import CollectionRules
from .devices import DEFAULT_DEVICES, probe, resolve_requested, status_in_run
from .distributed import XdistGathering
from .tracebacks import ExpectedFailureTracebacks
from .replay import FailureReplay
from .modes import CompiledModeRuns, resolve_modes, use_persistent_inductor_cache
from .recording import OutcomeRecorder
from .run_state import PACKAGE_TESTS, SPEC_MARKER, RunState
from .verdict import ReportAndVerdict

__all__ = ["RUN", "activate"]


class _TorchGlobalRandom:
    """Lets hypothesis seed (and restore) torch's global CPU RNG for every example.

    The CPU generator only (as ``getstate``/``setstate``): ``torch.manual_seed`` also queues a seed for every
    accelerator not yet initialised, each with a ``traceback.format_stack()`` of the caller (torch.cuda._lazy_call),
    which under pytest and hypothesis cost about 4 ms per example, a third of the eager CPU run's time.
    """

    def seed(self, seed: int) -> None:
        torch.default_generator.manual_seed(seed)

    def getstate(self):
        return torch.get_rng_state()

    def setstate(self, rng_state) -> None:
        torch.set_rng_state(rng_state)


_TORCH_RANDOM = _TorchGlobalRandom()


def activate(config: pytest.Config) -> None:
    """Set up the conformance run (from ``pytest_configure``, before hypothesis' plugin applies its profile)."""
    config.addinivalue_line("markers", f"{SPEC_MARKER}(*clause_ids): the spec clauses a conformance test checks")
    _installed_run_arguments(config)
    profiles.register_profiles()
    profile = config.getoption("--hypothesis-profile", None) or profiles.selected_profile()
    if profile not in profiles.PROFILES:
        raise pytest.UsageError(f"unknown hypothesis profile {profile!r}; known: {', '.join(profiles.PROFILES)}")
    hypothesis.settings.load_profile(profile)
    hypothesis.register_random(_TORCH_RANDOM)

    specs_dir = config.getoption("specs_dir")
    try:
        registry = load_specs(Path(specs_dir).resolve() if specs_dir else None)
    except SpecError as exc:
        raise pytest.UsageError(str(exc)) from None

    try:
        import_backends(config.getoption("backend") or [])
    except BackendError as exc:
        raise pytest.UsageError(str(exc)) from None
    devices, explicit = resolve_requested(config.getoption("device"))
    if explicit:
        unavailable = [probe(name) for name in devices if not probe(name).available]
        if unavailable:
            available = [name for name in DEFAULT_DEVICES if probe(name).available]
            raise pytest.UsageError(
                "requested device(s) not available: "
                + "; ".join(status.reason for status in unavailable)
                + f". Available here: {', '.join(available)}"
            )

    # The emulated device registers its device type now, before any test runs a backward:
    # the autograd engine sizes its per-device worker pool at the first backward of the
    # process, and a device type registered after that has no worker.
    for name in devices:
        if name.split(":")[0] == emulator.DEVICE_TYPE:
            status_in_run(name, explicit)

    modes = resolve_modes(config.getoption("mode"))
    use_persistent_inductor_cache(modes)

    clause_filter = frozenset(
        part.strip() for value in config.getoption("clause") or () for part in value.split(",") if part.strip()
    )
    unknown = sorted(clause_filter - set(registry))
    if unknown:
        raise pytest.UsageError(f"--clause names unknown clause ID(s): {', '.join(unknown)}")

    expectations_path = _expectations_path(config)
    try:
        expectations = load_expectations(expectations_path, registry) if expectations_path else []
    except ExpectationsError as exc:
        raise pytest.UsageError(str(exc)) from None

    roots = [Path(p).resolve() for p in config.getini("conformance_testpaths")] or [PACKAGE_TESTS]
    run = RunState(
        registry,
        devices,
        explicit,
        profile,
        clause_filter,
        roots,
        expectations=[e for e in expectations if e.in_force(torch.__version__)],
        expectations_path=expectations_path,
        seed=config.getoption("--hypothesis-seed", None),
        modes=modes,
    )
    config.stash[RUN] = run
    manager = config.pluginmanager
    manager.register(device_rules, f"{PLUGIN_NAME}.device_rules")
    manager.register(fixtures, f"{PLUGIN_NAME}.fixtures")
    recorder = OutcomeRecorder(run)
    parts = (
        CollectionRules(run),
        recorder,
        XdistGathering(run, recorder, config),
        ReportAndVerdict(run),
        CompiledModeRuns(profile),
        ExpectedFailureTracebacks(),
    ) + _failure_replay(config)
    for part in parts:
        manager.register(part, f"autograd-conformance-{type(part).__name__}")


def _expectations_path(config: pytest.Config) -> Path | None:
    value = config.getoption("expectations")
    if value is None:  # the suite's own known failures go with the suite's own specs
        return None if config.getoption("specs_dir") else DEFAULT_EXPECTATIONS
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else config.invocation_params.dir / path


def _installed_run_arguments(config: pytest.Config) -> None:
    """Under ``conformance_installed_run`` (``autograd-conformance run``'s ini file): the installed suite's tests
    are the default test path (``run`` appends them to every command line; dropped here where other test paths
    come before them), and a path that does not exist from the current directory is read from the rootdir (the
    directory holding the ``conformance`` package), so a report's node ids work as arguments."""
    if not config.getini("conformance_installed_run"):
        return
    given = [str(arg) for arg in getattr(config.option, "file_or_dir", None) or ()]
    if not given:
        config.args[:] = [str(PACKAGE_TESTS)]
        return
    if len(config.args) > 1 and str(config.args[-1]) == str(PACKAGE_TESTS):
        del config.args[-1]
    if getattr(config.option, "pyargs", False):
        return
    for index, arg in enumerate(config.args):
        path, sep, rest = str(arg).partition("::")
        if not (config.invocation_params.dir / path).exists() and (config.rootpath / path).exists():
            config.args[index] = str(config.rootpath / path) + sep + rest


def _failure_replay(config: pytest.Config) -> tuple:
    """``--replay REPORT``'s part (``replay.py``); its run writes its own report beside REPORT, never over it."""
    value = config.getoption("replay")
    if not value:
        return ()
    path = Path(value)
    if not path.is_absolute():
        path = config.invocation_params.dir / path
    report = config.getoption("conformance_report")
    if report and (config.invocation_params.dir / report).resolve() == path.resolve():
        config.option.conformance_report = str(path.with_name(f"{path.stem}-replay{path.suffix}"))
    return (FailureReplay(path),)
