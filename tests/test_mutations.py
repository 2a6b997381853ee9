"""The suite's power: with one torch behaviour broken, the tests of its clause fail.

Each mutant in ``tests/mutants.py`` runs the tests of the clauses it breaks
(``--clause``; CPU, the derandomized ``ci`` profile) in a subprocess; the run
must fail, and every one of those clauses must be reported failed with a message
naming it.  Runs go two at a time.  The inert baseline runs the whole suite
with the mutant plugin loaded and must pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.mutants import MUTANTS

ROOT = Path(__file__).resolve().parent.parent


def _run_suite(mutant: str | None, report: Path) -> subprocess.CompletedProcess:
    """The conformance suite with ``mutant`` applied, restricted to the clauses it breaks (all of it without one)."""
    command = [
        sys.executable, "-m", "pytest", "conformance/tests", "-q", "-p", "no:cacheprovider",
        "-p", "tests.mutants", "--device", "cpu", "--hypothesis-profile", "ci",
        "--conformance-report", str(report),
    ]  # fmt: skip
    if mutant:
        command += ["--mutant", mutant]
        for clause in MUTANTS[mutant].breaks:
            command += ["--clause", clause]
    # One intra-op thread each: two suites run side by side on a 2-core machine.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def mutant_runs(tmp_path_factory):
    """name -> (completed process, report dict); all mutants, two subprocesses at a time."""
    directory = tmp_path_factory.mktemp("mutants")

    def run(name):
        report = directory / f"{name}.json"
        process = _run_suite(name, report)
        return name, (process, json.loads(report.read_text()) if report.exists() else None)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, sorted(MUTANTS)))


def _failed_clauses(report: dict) -> set[str]:
    return {c["id"] for c in report["clauses"] if any(d["outcome"] == "failed" for d in c["devices"].values())}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_caught_by_the_tests_of_its_clause(mutant_runs, name):
    process, report = mutant_runs[name]
    output = process.stdout[-3000:] + process.stderr[-2000:]
    assert report is not None, f"mutant {name}: no report written\n{output}"
    assert process.returncode == 1, f"mutant {name} ({MUTANTS[name].description}) did not make the suite fail\n{output}"
    failed = _failed_clauses(report)
    missed = [cid for cid in MUTANTS[name].breaks if cid not in failed]
    assert not missed, (
        f"mutant {name} ({MUTANTS[name].description}) should fail clause(s) {missed}; "
        f"the suite failed only {sorted(failed)}"
    )
    for clause in report["clauses"]:
        if clause["id"] in MUTANTS[name].breaks:
            messages = [d["message"] for d in clause["devices"].values() if d["outcome"] == "failed"]
            assert any(f"{clause['id']} violated" in m for m in messages), (
                f"mutant {name}: the failure of {clause['id']} should say which clause was violated; got {messages}"
            )


def test_mutant_plugin_is_inert_without_a_mutant(tmp_path):
    """The baseline: the same command without --mutant passes, so failures above are the mutants'."""
    process = _run_suite(None, tmp_path / "report.json")
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-2000:]


def test_every_spec_area_has_a_mutant():
    """Each area's tests are shown able to fail: at least one mutant breaks one of its clauses."""
    from conformance.specs import load_specs

    areas = {clause.id.split("-")[0] for clause in load_specs().values()}
    broken = {cid.split("-")[0] for mutant in MUTANTS.values() for cid in mutant.breaks}
    assert areas <= broken, f"areas without a mutant: {sorted(areas - broken)}"
