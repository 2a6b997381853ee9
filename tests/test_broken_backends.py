"""The suite catches a broken backend: each broken variant of the emulated device fails its clauses there, and only there.

``tests/broken_backends.py`` builds variants of the ``emu`` device, each breaking
one thing a real backend bring-up gets wrong (BatchNorm running statistics,
copies that drop the graph, version counters, gradients left on the host, ...).
For each, one subprocess runs the conformance tests of the clauses it names on
``cpu`` and ``emu`` under that variant; its JSON report must show every named
clause failed on ``emu`` with a message naming it, and passed on ``cpu`` (the
variant's kernels are registered for the PrivateUse1 keys only) or, for the
cross-device clauses, which compare the device under test with the CPU, was
not exercised there.  One more run,
without a variant, shows those clauses hold on the unbroken emulator.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.reporting.report_io import load_report, outcome_table
from tests.broken_backends import BROKEN_BACKENDS

ROOT = Path(__file__).resolve().parent.parent

#: every clause some variant breaks: the baseline run checks them all on the unbroken emulator
ALL_BROKEN_CLAUSES = tuple(sorted({cid for backend in BROKEN_BACKENDS.values() for cid in backend.breaks}))


@pytest.fixture(scope="session")
def emulator_available() -> None:
    """Skip when the emulated device cannot be built or registered here (no compiler, torch too old)."""
    from conformance import emulator

    try:
        emulator.load()
    except emulator.EmulatorUnavailable as exc:
        pytest.skip(f"the emulated device is unavailable: {exc}")


def run_conformance(report: Path, clauses: tuple[str, ...], *extra: str) -> subprocess.CompletedProcess:
    """The conformance tests of ``clauses`` on cpu and emu, with the broken-backend plugin loaded; the report at ``report``."""
    command = [
        sys.executable, "-m", "pytest", "conformance/tests", "-q", "-p", "no:cacheprovider", "-p", "tests.broken_backends",
        "--device", "cpu,emu", "--clause", ",".join(clauses), "--hypothesis-profile", "ci", f"--conformance-report={report}", *extra,
    ]  # fmt: skip
    # One intra-op thread: the runs may share a 2-core machine with pytest-xdist workers.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def _outcomes(process: subprocess.CompletedProcess, report: Path) -> dict:
    assert report.exists(), f"the run wrote no report (exit status {process.returncode})\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}"
    return outcome_table(load_report(report))


def _describe(outcomes: dict, clause: str, device: str) -> str:
    record = outcomes.get((clause, device))
    if record is None:
        return f"{clause} on {device}: no tests ran"
    detail = record["message"] or record["reason"]
    return f"{clause} on {device}: {record['outcome']}" + (f" ({detail.splitlines()[0][:300]})" if detail else "")


def _holds_on_cpu(outcomes: dict, clause: str) -> bool:
    """Passed on cpu, or is a clause whose tests are declared not to run there (they compare another device with it)."""
    record = outcomes.get((clause, "cpu"), {})
    return record.get("outcome") == "passed" or (record.get("outcome") == "skipped" and "not exercised on cpu" in record.get("reason", ""))


def test_every_variant_names_known_clauses_and_says_what_it_breaks():
    from conformance.spec.registry import load_specs

    specs = load_specs()
    for backend in BROKEN_BACKENDS.values():
        assert backend.breaks, f"{backend.name} names no clause it breaks"
        unknown = [cid for cid in backend.breaks if cid not in specs]
        assert not unknown, f"{backend.name} names unknown clauses {unknown}"
        assert backend.description, f"{backend.name} has no description"


def test_the_unbroken_emulator_holds_every_clause_a_variant_breaks(emulator_available, tmp_path):
    report = tmp_path / "baseline.json"
    process = run_conformance(report, ALL_BROKEN_CLAUSES)
    outcomes = _outcomes(process, report)
    not_passed = [_describe(outcomes, cid, "emu") for cid in ALL_BROKEN_CLAUSES if outcomes.get((cid, "emu"), {}).get("outcome") != "passed"]
    not_passed += [_describe(outcomes, cid, "cpu") for cid in ALL_BROKEN_CLAUSES if not _holds_on_cpu(outcomes, cid)]
    assert not not_passed, "without a broken variant, these clauses must pass on cpu and emu:\n" + "\n".join(not_passed)


@pytest.mark.parametrize("name", sorted(BROKEN_BACKENDS))
def test_a_broken_backend_fails_its_clauses_on_the_device_only(emulator_available, tmp_path, name):
    backend = BROKEN_BACKENDS[name]
    report = tmp_path / f"{name}.json"
    process = run_conformance(report, backend.breaks, "--broken-backend", name)
    outcomes = _outcomes(process, report)
    uncaught = [
        _describe(outcomes, cid, "emu")
        for cid in backend.breaks
        if outcomes.get((cid, "emu"), {}).get("outcome") != "failed" or f"{cid} violated" not in outcomes[(cid, "emu")]["message"]
    ]
    assert not uncaught, f"broken backend {name} ({backend.description}) was not caught on emu (each clause must fail with '<ID> violated'):\n" + "\n".join(uncaught)
    false_alarms = [_describe(outcomes, cid, "cpu") for cid in backend.breaks if not _holds_on_cpu(outcomes, cid)]
    assert not false_alarms, f"broken backend {name} must leave the cpu alone, but:\n" + "\n".join(false_alarms)
    assert process.returncode != 0, f"broken backend {name}: the run exited 0 although clauses failed"
