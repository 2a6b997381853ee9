"""The suite's power, clause by clause: every mutant killed, every clause proven by a mutant.

One subprocess runs the whole conformance suite (CPU) under the kill-matrix plugin
(``tests/killmatrix.py``) on two pytest-xdist workers: each test runs as usual,
then under every mutant of ``tests/mutants/`` whose patched attributes it reached.
A second one runs, on the emulated device (``--device emu``), the tests of the
clauses that no test checked on the CPU (those about non-CPU tensors and across
devices); the two matrices are merged.  The tests below read the merged matrix
and print its totals.

Each mutant runs only against the tests of the clauses it names
(``--kill-collateral-examples 0``): that decides everything asserted here
(killed, precise, each clause's killers) in a fraction of the time of a full
matrix.  ``CONFORMANCE_KILL_COLLATERAL_EXAMPLES=3`` also runs every mutant against
every other test it reaches, with 3 examples, to measure its collateral (the
README's figures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.killmatrix import format_totals, merge_matrices
from tests.mutants import MUTANTS

ROOT = Path(__file__).resolve().parent.parent

#: clauses that need a device kind neither the CPU nor the emulated device is: their tests need CUDA
NEEDS_CUDA = {"XFER-4"}


def run_kill_matrix(path: Path, *extra: str, device: str = "cpu") -> subprocess.CompletedProcess:
    collateral_examples = os.environ.get("CONFORMANCE_KILL_COLLATERAL_EXAMPLES", "0")
    command = [
        sys.executable, "-m", "pytest", "conformance/tests", "-q", "-p", "no:cacheprovider", "-p", "tests.killmatrix",
        "--device", device, "--conformance-report=", "--kill-matrix", str(path), "-n", "2",
        "--kill-collateral-examples", collateral_examples, *extra,
    ]  # fmt: skip
    # One intra-op thread each: two workers share a 2-core machine.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)


def _emulated_device_reason() -> str | None:
    from conformance import emulator

    try:
        emulator.load()
    except emulator.EmulatorUnavailable as exc:
        return str(exc)
    return None


def _device_bound_clauses(cpu_matrix: dict) -> list[str]:
    """Clauses no test checked on the CPU although this torch is in their range: they need another device."""
    from conformance.spec.registry import load_specs

    specs = load_specs()
    return [cid for cid in cpu_matrix["totals"]["clauses_not_checkable_here"] if specs[cid].applies_to(torch.__version__)]


def _run(path: Path, *extra: str, device: str = "cpu") -> dict:
    process = run_kill_matrix(path, *extra, device=device)
    output = process.stdout[-4000:] + process.stderr[-3000:]
    assert process.returncode == 0, f"the baseline (no mutant) must pass under the kill-matrix plugin on {device}\n{output}"
    assert path.exists(), output
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def matrix(tmp_path_factory) -> dict:
    path = Path(os.environ.get("CONFORMANCE_KILL_MATRIX") or tmp_path_factory.mktemp("kill-matrix") / "kill-matrix.json")
    merged = _run(path)
    device_bound = [cid for cid in _device_bound_clauses(merged) if cid not in NEEDS_CUDA]
    if device_bound and _emulated_device_reason() is None:
        emu_path = path.with_name(path.stem + "-emu.json")
        merged = merge_matrices(merged, _run(emu_path, "--clause", ",".join(device_bound), device="emu"))
        path.write_text(json.dumps(merged, indent=1, sort_keys=True))
    return merged


def test_kill_matrix_totals(matrix, capsys):
    with capsys.disabled():
        print(f"\n{format_totals(matrix)}")
    assert matrix["totals"]["mutants"] == len(MUTANTS)
    assert not matrix["totals"]["baseline_failed"]


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_killed_by_the_tests_of_the_clauses_it_names(matrix, name):
    row = matrix["mutants"][name]
    failed = [f"{f['test']}: {f['message']}" for f in row["failures"][:5]]
    assert row["killed"], f"mutant {name} ({row['description']}) survived: {row['tests_run']} tests ran under it, none failed"
    assert row["precise"], (
        f"mutant {name} ({row['description']}) should fail {row['breaks']} with messages naming them; "
        f"{row['breaks_not_failed']} did not. Failures:\n" + "\n".join(failed)
    )


def test_every_clause_has_a_killing_mutant(matrix):
    missing = matrix["totals"]["clauses_without_killing_mutant"]
    assert not missing, f"clauses no mutant is shown to break (add one to tests/mutants/<area>.py): {missing}"


def test_only_version_or_device_bound_clauses_go_unchecked(matrix):
    """A clause none of whose tests ran here must be outside this torch's range, or need CUDA (or the
    emulated device, where this torch cannot build it)."""
    from conformance.spec.registry import load_specs

    specs = load_specs()
    excluded = {cid for cid, clause in specs.items() if not clause.applies_to(torch.__version__)}
    needs_another_device = set(NEEDS_CUDA)
    if _emulated_device_reason() is not None:
        needs_another_device |= set(_device_bound_clauses(matrix))
    unexplained = set(matrix["totals"]["clauses_not_checkable_here"]) - excluded - needs_another_device
    assert not unexplained, f"clauses whose tests did not run, for no version or device reason: {sorted(unexplained)}"


def test_every_spec_area_has_a_mutant():
    """Each area's tests are shown able to fail: at least one mutant breaks one of its clauses."""
    from conformance.spec.registry import load_specs

    areas = {clause.id.split("-")[0] for clause in load_specs().values()}
    broken = {cid.split("-")[0] for mutant in MUTANTS.values() for cid in mutant.breaks}
    assert areas <= broken, f"areas without a mutant: {sorted(areas - broken)}"
