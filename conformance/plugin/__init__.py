"""The pytest plugin: clause citations, device parametrization, state guard, report.

Loaded by the repository's top-level ``conftest.py``; for an installed copy run
``pytest -p conformance.plugin --pyargs conformance.tests``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import hypothesis
import pytest
import torch

from .. import __version__
from . import profiles, state
from .devices import DEFAULT_DEVICES, probe, resolve_requested
from .environment import collect_environment
from ..spec.expectations import DEFAULT_EXPECTATIONS, Expectation, ExpectationsError, load_expectations
from ..reporting.report import TestRecord, build_report, clause_outcomes, tally, write_json_atomically
from ..reporting.report_io import BASIS_MEANINGS, counts_phrase
from ..spec.registry import SpecError, SpecRegistry, load_specs

SPEC_MARKER = "spec"
DEFAULT_REPORT = "conformance-report.json"
_PACKAGE_TESTS = Path(__file__).resolve().parent.parent / "tests"
#: Benchmarks cite clauses like tests (checked the same way) but have no outcome in the report.
_PACKAGE_BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


# ----------------------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("autograd-conformance")
    group.addoption(
        "--device",
        action="append",
        metavar="DEVICE",
        help="torch device(s) to run on, repeatable or comma-separated (e.g. cpu,cuda:1). "
        "Default: cpu, plus cuda and mps, which skip when absent. An explicitly named "
        "device that is unavailable is a usage error.",
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


@dataclass(eq=False)  # hashable by identity: pytest keeps plugins in sets
class ConformanceRun:
    """Per-session state; registered as a plugin so its hooks see the run."""

    registry: SpecRegistry
    devices: list[str]
    explicit_devices: bool
    profile: str
    clause_filter: frozenset[str]
    conformance_roots: list[Path]
    expectations: list[Expectation] = field(default_factory=list)  # those in force for this torch
    expectations_path: Path | None = None
    seed: object = None
    records: dict[str, TestRecord] = field(default_factory=dict)
    citations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    expected_failures: dict[Expectation, list[str]] = field(default_factory=lambda: defaultdict(list))
    report_path: Path | None = None

    def is_conformance_test(self, item: pytest.Item) -> bool:
        return _under(item, self.conformance_roots)

    def is_benchmark(self, item: pytest.Item) -> bool:
        return _under(item, [_PACKAGE_BENCHMARKS])

    @pytest.hookimpl(tryfirst=True)  # see every collected item, before -k/-m deselect some
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        problems: list[str] = []
        keep: list[pytest.Item] = []
        deselected: list[pytest.Item] = []
        for item in items:
            conformance_test = self.is_conformance_test(item)
            if not conformance_test and not self.is_benchmark(item):
                keep.append(item)
                continue
            clause_ids = tuple(dict.fromkeys(arg for mark in item.iter_markers(SPEC_MARKER) for arg in mark.args))
            unknown = [cid for cid in clause_ids if cid not in self.registry]
            if not clause_ids:
                kind = "conformance test" if conformance_test else "benchmark"
                problems.append(f"{item.nodeid}: {kind} cites no clause (add @pytest.mark.spec('AREA-N'))")
                continue
            if unknown:
                problems.append(f"{item.nodeid}: cites unknown clause ID(s) {', '.join(unknown)}")
                continue
            if conformance_test:
                for cid in clause_ids:
                    self.citations[cid].append(item.nodeid)
            if self.clause_filter and not self.clause_filter.intersection(clause_ids):
                deselected.append(item)
                continue
            excluded = [self.registry[cid] for cid in clause_ids if not self.registry[cid].applies_to(torch.__version__)]
            if excluded:
                reason = "; ".join(f"{c.id} applies to torch {c.versions}, installed torch is {torch.__version__}" for c in excluded)
                item.add_marker(pytest.mark.skip(reason=reason))
            if not conformance_test:  # a benchmark: timed, not judged
                keep.append(item)
                continue
            callspec = getattr(item, "callspec", None)
            device_name = callspec.params.get("device") if callspec else None
            self.records[item.nodeid] = TestRecord(item.nodeid, clause_ids, device_name)
            if not excluded:
                self._mark_expected_failures(item, clause_ids, device_name)
            keep.append(item)
        if problems:
            raise pytest.UsageError("invalid clause citations:\n  " + "\n  ".join(problems))
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = keep

    def _mark_expected_failures(self, item: pytest.Item, clause_ids: tuple[str, ...], device_name: str | None) -> None:
        matching = [e for e in self.expectations if e.matches(item.nodeid, clause_ids, device_name)]
        for expectation in matching:
            self.expected_failures[expectation].append(item.nodeid)
        if matching:
            reason = "; ".join(f"{e.clause} expected to fail: {e.reason} [{e.source}]" for e in matching)
            item.add_marker(pytest.mark.xfail(reason=reason, strict=False))

    def stale_expectations(self) -> list[tuple[Expectation, str]]:
        """Entries in force that matched no failing test: ``(entry, why it is stale)``."""
        stale = []
        for expectation in self.expectations:
            if self.clause_filter and expectation.clause not in self.clause_filter:
                continue  # its tests were not selected: nothing to say
            matched = [self.records[n] for n in self.expected_failures.get(expectation, []) if n in self.records]
            outcomes = {record.outcome for record in matched}
            if expectation.devices and not set(expectation.devices) & set(self.devices):
                continue  # none of its devices is in this run
            if expectation.clause not in self.citations:
                continue  # no test of its clause was collected (a subset of the files ran): nothing to say
            if not matched:
                stale.append((expectation, "it matches no collected test"))
            elif "known failure" not in outcomes and "passed" in outcomes:
                stale.append((expectation, "its tests passed: the failure is gone, remove the entry"))
        return stale

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = self.records.get(report.nodeid)
        if record is None:
            return
        if report.failed:
            if record.outcome not in ("failed", "error"):
                record.outcome = "failed" if report.when == "call" else "error"
                record.message = _failure_message(report)
        elif report.skipped and hasattr(report, "wasxfail"):
            record.outcome = "known failure"
            record.message = report.wasxfail
        elif report.skipped:
            if record.outcome == "not run":
                record.outcome = "skipped"
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
                record.message = reason.removeprefix("Skipped: ")
        elif report.when == "call" and record.outcome == "not run":
            record.outcome = "passed"

    def expectations_summary(self) -> dict:
        return {
            "path": str(self.expectations_path) if self.expectations_path else None,
            "applied": [
                {**e.to_json(), "source": e.source, "matched": self.expected_failures.get(e, [])} for e in self.expectations
            ],
            "stale": [{**e.to_json(), "source": e.source, "why": why} for e, why in self.stale_expectations()],
        }

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        path = session.config.getoption("conformance_report")
        if exitstatus in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
            self.records.clear()  # the run never started: no report, no summary that reads as outcomes
            return
        if path and self.records:
            device_status = {name: probe(name) for name in self.devices}
            report = build_report(
                self.registry,
                self.records.values(),
                devices=self.devices,
                device_status=device_status,
                environment=collect_environment(device_status, profile=self.profile, seed=self.seed),
                exit_status=int(exitstatus),
                expectations=self.expectations_summary(),
            )
            target = Path(path)
            if not target.is_absolute():
                target = session.config.invocation_params.dir / target
            write_json_atomically(target, report)
            self.report_path = target

    def pytest_terminal_summary(self, terminalreporter, config: pytest.Config) -> None:
        if not self.records:
            return
        outcomes = clause_outcomes(
            self.registry,
            self.records.values(),
            self.devices,
            torch_version=torch.__version__,
            device_status={name: probe(name) for name in self.devices},
        )
        write = terminalreporter.write_line
        terminalreporter.section("autograd conformance")
        for cid, per_device in outcomes.items():
            for device_name, result in per_device.items():
                if result["outcome"] == "known failure":
                    write(f"KNOWN FAILURE {cid} [{device_name}] {result['reason']}", yellow=True)
                if result["outcome"] == "failed":
                    clause = self.registry[cid]
                    first_line = (result["message"].strip().splitlines() or [""])[0]
                    remark = f" ({clause.basis}: {BASIS_MEANINGS[clause.basis]})" if clause.basis != "documented" else ""
                    write(
                        f"VIOLATED {cid} [{device_name}] {clause.title} ({clause.location}){remark}", red=True, bold=True
                    )
                    write(f"    {first_line}")
        for expectation, why in self.stale_expectations():
            write(f"STALE EXPECTATION {expectation.describe()}: {why}", yellow=True)
        uncited = [cid for cid in self.registry if cid not in self.citations]
        if uncited:
            listing = ", ".join(uncited) if len(uncited) <= 10 or config.option.verbose > 0 else "(-v lists them)"
            write(f"clauses cited by no collected test: {len(uncited)}: {listing}", yellow=True)
        write(f"clauses on torch {torch.__version__}:")
        verdicts = []
        for device_name in self.devices:
            status = probe(device_name)
            if not status.available:
                write(f"  {device_name}: skipped ({status.reason})", yellow=True)
                continue
            counts = tally(outcomes, device_name)
            failed = counts.get("failed", 0) > 0
            write(f"  {device_name}: {counts_phrase(counts)}", red=failed, green=not failed)
            verdicts.append((device_name, failed, counts.get("failed", 0)))
        if self.report_path is not None:
            write(f"report: {self.report_path} (python -m conformance summary {self.report_path})")
        violated = [f"{n} clause{'s' if n != 1 else ''} on {name}" for name, failed, n in verdicts if failed]
        tested_on = ", ".join(name for name, _, _ in verdicts) or "no device"
        if violated:
            write(f"VERDICT: torch {torch.__version__} VIOLATES the spec: {'; '.join(violated)}", red=True, bold=True)
        else:
            write(f"VERDICT: torch {torch.__version__} conforms on {tested_on}", green=True, bold=True)


def _under(item: pytest.Item, roots: list[Path]) -> bool:
    path = Path(str(item.path)).resolve()
    return any(root == path or root in path.parents for root in roots)


def _failure_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    return str(report.longrepr).strip().splitlines()[-1] if report.longrepr else ""


_RUN = pytest.StashKey[ConformanceRun]()


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

    roots = [Path(p).resolve() for p in config.getini("conformance_testpaths")] or [_PACKAGE_TESTS]
    run = ConformanceRun(
        registry,
        devices,
        explicit,
        profile,
        clause_filter,
        roots,
        expectations=[e for e in expectations if e.in_force(torch.__version__)],
        expectations_path=expectations_path,
        seed=config.getoption("--hypothesis-seed", None),
    )
    config.stash[_RUN] = run
    config.pluginmanager.register(run, "autograd-conformance-run")


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
        f"devices: {', '.join(run.devices)}, hypothesis profile: {run.profile}"
    ]


# ----------------------------------------------------------------------------- devices


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device" in metafunc.fixturenames:
        devices = metafunc.config.stash[_RUN].devices
        metafunc.parametrize("device", devices, indirect=True, ids=str, scope="session")


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    """The torch device string under test; an absent auto-detected device skips here, lazily."""
    status = probe(request.param)
    if not status.available:
        pytest.skip(status.reason)
    return request.param


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


# ----------------------------------------------------------------------------- device rules
#
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
