"""Every property test's examples can fail: under the ``ci`` profile, at least 90% of each test's examples are decisive.

Runs the conformance suite (CPU, ``ci`` profile) once with ``tests/decisiveness.py``,
then, on the emulated device, the tests declared not to run on the CPU (device rules:
the cross-device and non-CPU tests), and prints the table, lowest share first.  An example is not decisive when
hypothesis discarded it (``assume``/``filter``) or the test marked it
:func:`conformance.testlib.strategies.vacuous`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.decisiveness import THRESHOLD, format_table, read_report, share

ROOT = Path(__file__).resolve().parent.parent


def _tally(path: Path, device: str, *extra: str) -> dict[str, dict]:
    command = [
        sys.executable, "-m", "pytest", "conformance/tests", "-q", "-p", "no:cacheprovider", "-p", "tests.decisiveness",
        "--device", device, "--hypothesis-profile", "ci", "--conformance-report=", "--decisiveness-report", str(path), *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-2000:]
    return read_report(path)


@pytest.fixture(scope="module")
def tally(tmp_path_factory) -> dict[str, dict]:
    from conformance import emulator

    directory = tmp_path_factory.mktemp("decisiveness")
    entries = _tally(directory / "cpu.json", "cpu")
    try:
        emulator.load()
    except emulator.EmulatorUnavailable:
        return entries  # the device-bound tests are then not measured; test_mutations says which clauses go unchecked
    return {**entries, **_tally(directory / "emu.json", "emu", "-m", "devices or needs_other_device")}


def test_every_property_test_is_at_least_90_percent_decisive(tally, capsys):
    totals = {key: sum(entry.get(key, 0) for entry in tally.values()) for key in ("examples", "discarded", "vacuous", "overrun")}
    with capsys.disabled():
        print(
            f"\n{len(tally)} property tests, {totals['examples']} examples: {totals['discarded']} discarded, "
            f"{totals['vacuous']} vacuous ({totals['overrun']} aborted by hypothesis before the test body ran); "
            f"decisive share, lowest first:\n{format_table(tally, most=15)}"
        )
    weak = {nodeid: entry for nodeid, entry in tally.items() if share(entry) < THRESHOLD}
    assert not weak, f"property tests below {THRESHOLD:.0%} decisive:\n{format_table(weak)}"


def test_the_tally_saw_the_property_tests(tally):
    """A plugin that recorded nothing would pass the test above vacuously."""
    assert len(tally) > 100, sorted(tally)
    assert all(entry["examples"] >= 1 for entry in tally.values())


def test_discarded_and_vacuous_examples_are_counted_against_a_test():
    """The tally itself, on a property whose examples are partly discarded and partly marked vacuous."""
    from hypothesis import assume, given, settings
    from hypothesis import strategies as st
    from hypothesis.statistics import collector

    from conformance.testlib.strategies import vacuous
    from tests.decisiveness import tally_statistics

    @settings(max_examples=60, derandomize=True, database=None)
    @given(st.integers(0, 3))
    def prop(x):
        assume(x != 0)
        if x == 1:
            vacuous("x is one")

    seen: list[dict] = []
    with collector.with_value(seen.append):
        prop()
    entry = tally_statistics(seen[0])
    assert entry["discarded"] > 0 and entry["vacuous"] > 0, entry
    assert entry["decisive"] == entry["examples"] - entry["discarded"] - entry["vacuous"] > 0
    assert "vacuous: x is one" in entry["reasons"]
    assert share(entry) < 1
