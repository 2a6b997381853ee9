"""The pytest plugin: options, the run's setup, device parametrization, state guard.

Loaded by the repository's top-level ``conftest.py``; for an installed copy run
``pytest -p conformance.plugin --pyargs conformance.tests``.  Its parts, each
registered for the session by ``pytest_configure``: ``collection.py`` (citations,
--clause, version ranges, known failures marked), ``recording.py`` (each test's
outcome), ``known_failures.py`` (stale expectations), ``verdict.py`` (the report
and the verdict), ``device_rules.py`` (declared device rules); the state they
share is ``run_state.RunState``.
"""

from __future__ import annotations

from pathlib import Path

import hypothesis
import pytest
import torch

from .. import __version__, emulator
from . import profiles, state
from ..spec.expectations import DEFAULT_EXPECTATIONS, ExpectationsError, load_expectations
from ..spec.registry import SpecError, load_specs
from .collection import CollectionRules
from .device_rules import (  # noqa: F401 (hook implementations, registered with this module)
    pytest_collection_modifyitems_device_rules,
    pytest_configure_device_rules,
)
from .backends import BackendError, import_backends
from .devices import DEFAULT_DEVICES, probe, resolve_requested, status_in_run
from .modes import CompiledModeRuns, resolve_modes, use_persistent_inductor_cache
from ..testlib.modes import EAGER, MODE_NAMES, Mode
from .recording import OutcomeRecorder
from .run_state import PACKAGE_TESTS, SPEC_MARKER, RunState
from .verdict import ReportAndVerdict

DEFAULT_REPORT = "conformance-report.json"


# ----------------------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("autograd-conformance")
    group.addoption(
        "--device",
        action="append",
        metavar="DEVICE",
        help="torch device(s) to run on, repeatable or comma-separated (e.g. cpu,cuda:1). "
        "Default: cpu, plus cuda and mps, which skip when absent, and the emulated device emu "
        "where neither is present. An explicitly named device that is unavailable is a usage error.",
    )
    group.addoption(
        "--mode",
        action="append",
        metavar="MODE",
        help=f"execution mode(s), repeatable or comma-separated: {', '.join(MODE_NAMES)}. Default: eager. In a "
        "compiled mode each test's user program runs through torch.compile with that backend; a pass that did not "
        "rest on compiled code (graph break, eager fallback) is reported 'not compiled'",
    )
    group.addoption(
        "--backend",
        action="append",
        metavar="MODULE",
        help="import this Python module before devices are probed (repeatable): a vendor's backend package that "
        "registers its device when imported, e.g. torch_npu; recorded in the report's environment. Modules listed "
        "in the 'autograd_conformance.backends' entry point group are imported too.",
    )
    group.addoption(
        "--clause",
        action="append",
        metavar="ID",
        help="run only the tests citing these clause IDs (repeatable or comma-separated)",
    )
    group.addoption("--specs-dir", metavar="DIR", help="spec directory (default: the repository's specs/)")
    group.addoption(
        "--conformance-report",
        metavar="PATH",
        default=DEFAULT_REPORT,
        help=f"where to write the JSON report of every clause's outcome per device "
        f"(default: {DEFAULT_REPORT} in the directory pytest starts in; an empty value writes none). "
        "Schema: docs/report-schema.md",
    )
    group.addoption(
        "--expectations",
        metavar="PATH",
        help="TOML file of known failures per torch version and device, reported as 'known failure' "
        "instead of failing the run (default: the suite's own conformance/spec/expectations.toml, "
        "unless --specs-dir points at other specs; an empty value reads none)",
    )
    group.addoption(
        "--benchmark-torch-threads",
        type=int,
        default=1,
        metavar="N",
        help="torch intra-op threads while the benchmarks in conformance/benchmarks run (default: 1, so that "
        "other load on the machine cannot stall a thread barrier; 0 keeps torch's own default)",
    )
    parser.addini(
        "conformance_testpaths",
        type="paths",
        help="directories holding conformance tests (each must cite a clause); "
        "default: the conformance package's tests/",
    )


# ----------------------------------------------------------------------------- the run


_RUN = pytest.StashKey[RunState]()


# ----------------------------------------------------------------------------- setup


class _TorchGlobalRandom:
    """Lets hypothesis seed (and restore) torch's global CPU RNG for every example."""

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def getstate(self):
        return torch.get_rng_state()

    def setstate(self, rng_state) -> None:
        torch.set_rng_state(rng_state)


_TORCH_RANDOM = _TorchGlobalRandom()


@pytest.hookimpl(tryfirst=True)  # before hypothesis' plugin applies --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{SPEC_MARKER}(*clause_ids): the spec clauses a conformance test checks")
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
    config.stash[_RUN] = run
    for part in (CollectionRules(run), OutcomeRecorder(run), ReportAndVerdict(run), CompiledModeRuns(profile)):
        config.pluginmanager.register(part, f"autograd-conformance-{type(part).__name__}")


def _expectations_path(config: pytest.Config) -> Path | None:
    value = config.getoption("expectations")
    if value is None:  # the suite's own known failures go with the suite's own specs
        return None if config.getoption("specs_dir") else DEFAULT_EXPECTATIONS
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else config.invocation_params.dir / path


def pytest_report_header(config: pytest.Config) -> list[str]:
    run = config.stash[_RUN]
    return [
        f"autograd-conformance {__version__}: torch {torch.__version__}, {len(run.registry)} clauses, "
        f"devices: {', '.join(run.devices)}, modes: {', '.join(run.modes)}, hypothesis profile: {run.profile}"
    ]


# ----------------------------------------------------------------------------- devices


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    run = metafunc.config.stash[_RUN]
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", run.devices, indirect=True, ids=str, scope="session")
    # Only conformance tests run in compiled modes; an eager-only run keeps the test ids it always had.
    if run.modes != [EAGER] and "mode" in metafunc.fixturenames and run.is_conformance_path(metafunc.definition.path):
        metafunc.parametrize("mode", run.modes, indirect=True, ids=str, scope="session")


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    """The torch device string under test; an absent auto-detected device skips here, lazily."""
    status = status_in_run(request.param, request.config.stash[_RUN].explicit_devices)
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


# ----------------------------------------------------------------------------- state guard


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


