"""Runs on pytest-xdist (conformance/plugin/distributed.py): one report, crash isolation, replayable failures.

The runs here start real xdist workers, so they run pytest in a subprocess
(``runpytest_subprocess``): each costs an ``import torch`` per process.
"""

from __future__ import annotations

import json
import sys

import pytest

from conformance.plugin.distributed import crash_reason
from conformance.plugin.recording import reproduce_failure_decorator
from conformance.reporting.merge import merge_reports
from tests.test_plugin import Suite, clause_md

pytest.importorskip("xdist")

CLAUSES = (
    clause_md("PASS-1", "holds"),
    clause_md("PASS-2", "holds too"),
    clause_md("FAIL-1", "is violated"),
    clause_md("KNOWN-1", "is violated, and the expectations say so"),
    clause_md("CRASH-1", "kills the process"),
    clause_md("OLD-1", "only for ancient torch", versions="<1.0"),
    clause_md("UNCITED-1", "nobody tests this"),
)

#: tests over every outcome a clause can have, in two files so that the workers share them out
TESTS_A = """
    from hypothesis import given, strategies as st
    from conformance.testlib.assertions import fail

    @pytest.mark.spec("PASS-1")
    @pytest.mark.parametrize("n", range(4))
    def test_holds(device, n):
        pass

    @pytest.mark.spec("FAIL-1")
    @given(x=st.integers(0, 100))
    def test_violated(device, x):
        if x > 10:
            fail("FAIL-1", f"x should stay small, got {x}")

    @pytest.mark.spec("OLD-1")
    def test_ancient():
        pass
    """
TESTS_B = """
    @pytest.mark.spec("PASS-2")
    @pytest.mark.parametrize("n", range(4))
    def test_holds_too(device, n):
        pass

    @pytest.mark.spec("KNOWN-1")
    def test_known(device):
        assert False, "a known defect"
    """
EXPECTATIONS = """
[[expected_failure]]
clause = "KNOWN-1"
reason = "a known defect"
reproduction = "test_b.py::test_known"
torch = ">=1.13"
devices = ["cpu"]
"""
CRASHING_TEST = """
    import os

    @pytest.mark.spec("CRASH-1")
    def test_crashes(device):
        os.abort()
    """


INTERRUPTING_TEST = """
    import os
    import signal
    import time

    @pytest.mark.spec("CRASH-1")
    def test_interrupts_the_run(device):
        time.sleep(1.0)  # the other worker runs tests meanwhile
        os.killpg(os.getpgid(0), signal.SIGINT)  # as Ctrl-C or `timeout --signal=INT` do: every process of the run
        time.sleep(30)
    """
#: pytest in a session of its own, so that the interrupt reaches its processes and not the pytest running this file,
#: with SIGINT's default action: a shell runs a background job (CI's, say) with SIGINT ignored, which exec keeps
PYTEST_IN_ITS_OWN_SESSION = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.setsid(); "
    "os.execv(sys.executable, [sys.executable, '-m', 'pytest', *sys.argv[1:]])"
)


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Suite:
    monkeypatch.setenv("CI", "true")  # the ci profile: derandomized, so that runs can be compared
    monkeypatch.delenv("CONFORMANCE_PROFILE", raising=False)
    suite = Suite(pytester)
    suite.write_specs(*CLAUSES)
    suite.write_tests(TESTS_A, name="test_a")
    suite.write_tests(TESTS_B, name="test_b")
    (pytester.path / "expectations.toml").write_text(EXPECTATIONS, encoding="utf-8")
    return suite


def run(suite: Suite, report: str, *args: str) -> tuple[pytest.RunResult, dict]:
    result = suite.pytester.runpytest_subprocess(
        "-p", "conformance.plugin", "--specs-dir=specs", "--expectations=expectations.toml", "--device=cpu",
        "-p", "no:cacheprovider", f"--conformance-report={report}", *args,
    )
    return result, json.loads((suite.pytester.path / report).read_text(encoding="utf-8"))


def without_timestamps(report: dict) -> dict:
    return {key: value for key, value in report.items() if key != "created"}


def outcome(report: dict, clause_id: str) -> dict:
    (entry,) = [c for c in report["clauses"] if c["id"] == clause_id]
    return entry["devices"]["cpu"]


def test_serial_xdist_and_two_merged_shards_give_the_same_report_and_xdist_the_same_terminal_section(suite):
    serial, serial_report = run(suite, "serial.json")
    parallel, parallel_report = run(suite, "parallel.json", "-n", "2")
    assert without_timestamps(parallel_report) == without_timestamps(serial_report)
    # two shards, each on two workers, merged (--shard, conformance/reporting/merge.py)
    shards = [run(suite, f"shard-{i}.json", f"--shard={i}/2", "-n", "2")[1] for i in (1, 2)]
    assert all(any(t["outcome"] == "not run" for t in shard["tests"]) for shard in shards)  # each ran a part
    merged = merge_reports([(f"shard-{i}.json", shard) for i, shard in enumerate(shards, 1)]).report
    assert without_timestamps(merged) == without_timestamps(serial_report)
    assert serial_report["verdict"] == "violated"
    assert {c["id"]: outcome(serial_report, c["id"])["outcome"] for c in serial_report["clauses"] if c["devices"]} == {
        "PASS-1": "passed", "PASS-2": "passed", "FAIL-1": "failed", "KNOWN-1": "known failure", "OLD-1": "not applicable",
    }

    def conformance_section(result: pytest.RunResult) -> list[str]:
        lines = result.outlines
        start = next(i for i, line in enumerate(lines) if "autograd conformance" in line)
        return [line for line in lines[start:] if not line.startswith(("report:", "=")) or "VERDICT" in line]

    assert conformance_section(parallel) == conformance_section(serial)
    parallel.stdout.fnmatch_lines(["VIOLATED FAIL-1 [[]cpu[]] is violated*", "VERDICT: torch * VIOLATES the spec: 1 clause on cpu"])
    # the failing property test's example can be replayed from either report
    (failed,) = [t for t in parallel_report["tests"] if t["outcome"] == "failed"]
    assert failed["reproduce"].startswith("@reproduce_failure(")
    assert all(t["reproduce"] is None for t in parallel_report["tests"] if t is not failed)


def test_a_test_that_kills_its_worker_fails_its_clause_with_the_reason_and_the_run_goes_on(suite):
    suite.write_tests(CRASHING_TEST, name="test_0_crash")  # first in collection order: the others run after it
    result, report = run(suite, "out.json", "-n", "2")
    crashed = outcome(report, "CRASH-1")
    assert crashed["outcome"] == "failed"
    assert "crashed while running 'test_0_crash.py::test_crashes[cpu]'" in crashed["message"]
    assert "Fatal Python error: Aborted (in test_crashes at test_0_crash.py:8)" in crashed["message"]
    assert outcome(report, "PASS-1")["outcome"] == "passed" and outcome(report, "PASS-2")["outcome"] == "passed"
    assert outcome(report, "KNOWN-1")["outcome"] == "known failure"
    result.stdout.fnmatch_lines(["*replacing crashed worker*", "VIOLATED CRASH-1 [[]cpu[]] kills the process*"])
    assert {t["outcome"] for t in report["tests"]} == {"passed", "failed", "known failure", "skipped"}


def test_an_interrupted_run_reports_the_tests_that_ran_and_the_others_as_not_run(suite):
    """An interrupt can end the workers before they send what they collected (tools/gpu-check's budgets stopped a
    run so: no report); the controller then reads the copy each worker wrote when it collected."""
    suite.write_tests(INTERRUPTING_TEST, name="test_0_interrupt")  # first in collection order
    result = suite.pytester.run(
        sys.executable, "-c", PYTEST_IN_ITS_OWN_SESSION,
        "-p", "conformance.plugin", "--specs-dir=specs", "--expectations=expectations.toml", "--device=cpu",
        "-p", "no:cacheprovider", "--conformance-report=out.json", "-n", "2", timeout=120,
    )  # fmt: skip
    # whether the workers still sent their collection (then nothing is said) or not (the copy on disk is read,
    # and the run says so) depends on where the interrupt caught them; either way the report is written
    assert "no worker finished its session, so" not in result.stdout.str()
    report = json.loads((suite.pytester.path / "out.json").read_text(encoding="utf-8"))
    outcomes = {t["nodeid"]: t["outcome"] for t in report["tests"]}
    assert "passed" in outcomes.values() and "not run" in outcomes.values(), outcomes
    assert report["exit_status"] == int(pytest.ExitCode.INTERRUPTED)


def test_crash_reason_is_the_fatal_error_and_the_innermost_frame():
    text = (
        "Fatal Python error: Segmentation fault\n\nThread 0x00007e (most recent call first):\n"
        '  File "/x/execnet/gateway_base.py", line 534 in read\n\n'
        "Current thread 0x00007f (most recent call first):\n"
        '  File "/x/conformance/tests/test_detach.py", line 42 in test_detach_shares_storage\n'
        '  File "/x/_pytest/python.py", line 157 in pytest_pyfunc_call\n'
    )
    assert crash_reason(text) == "Fatal Python error: Segmentation fault (in test_detach_shares_storage at test_detach.py:42)"
    assert crash_reason("Fatal Python error: Aborted\n") == "Fatal Python error: Aborted"
    assert crash_reason("") == ""


def test_reproduce_failure_decorator_is_read_from_the_failure_text():
    text = "E  AssertionError\n\nYou can reproduce this example by temporarily adding @reproduce_failure('6.1.0', b'AXicY2BgAAAABQAB') as a decorator on your test case"
    assert reproduce_failure_decorator(text) == "@reproduce_failure('6.1.0', b'AXicY2BgAAAABQAB')"
    assert reproduce_failure_decorator("AssertionError") is None

