"""``--replay REPORT`` (conformance/plugin/replay.py): a report's failed tests, run again with their failing examples."""

from __future__ import annotations

import json

import pytest

from conformance.plugin.replay import parse_reproduce_failure
from tests.test_plugin import Suite

TESTS = """
    from hypothesis import given, strategies as st
    from conformance.testlib.assertions import fail

    @pytest.mark.spec("PASS-1")
    def test_holds(device):
        pass

    @pytest.mark.spec("FAIL-1")
    @given(x=st.integers(0, 1000))
    def test_violated(device, x):
        if x % 7 == 3:
            fail("FAIL-1", f"x={x}")
    """


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Suite:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("CONFORMANCE_PROFILE", raising=False)
    suite = Suite(pytester)
    suite.write_tests(TESTS)
    return suite


def failing_x(result: pytest.RunResult) -> str:
    (line,) = [line for line in result.outlines if "FAIL-1 violated: x=" in line and line.startswith("E ")]
    return line.split("x=")[1]


def test_replay_runs_only_the_failed_tests_with_the_recorded_example(suite):
    first = suite.run("--device=cpu", "--conformance-report=out.json")
    first.assert_outcomes(passed=1, failed=1)
    report = json.loads((suite.pytester.path / "out.json").read_text())
    (failed,) = [t for t in report["tests"] if t["outcome"] == "failed"]
    assert failed["reproduce"]

    replay = suite.run("--device=cpu", "--replay=out.json", "--conformance-report=out.json")
    replay.assert_outcomes(failed=1, deselected=1)
    replay.stdout.fnmatch_lines(["replaying 1 failed test(s) of *out.json, 1 with the recorded failing example"])
    assert failing_x(replay) == failing_x(first)
    # the replayed report is left as it was; the replay's own report goes beside it
    assert json.loads((suite.pytester.path / "out.json").read_text()) == report
    assert json.loads((suite.pytester.path / "out-replay.json").read_text())["verdict"] == "violated"


def test_replaying_an_example_that_no_longer_fails_says_so(suite):
    suite.run("--device=cpu", "--conformance-report=out.json").assert_outcomes(passed=1, failed=1)
    suite.write_tests(TESTS.replace("x % 7 == 3", "x < 0"))  # "torch fixed the defect"
    replay = suite.run("--device=cpu", "--replay=out.json")
    replay.assert_outcomes(failed=1, deselected=1)
    replay.stdout.fnmatch_lines(["*DidNotReproduce*"])


def test_replay_of_a_report_without_failures_is_a_usage_error(suite):
    suite.write_tests(TESTS.replace("x % 7 == 3", "x < 0"))
    suite.run("--device=cpu", "--conformance-report=out.json").assert_outcomes(passed=2)
    result = suite.run("--device=cpu", "--replay=out.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--replay: *out.json records no failed test*"])


def test_parse_reproduce_failure():
    assert parse_reproduce_failure("@reproduce_failure('6.170.17', b'AEEL')") == ("6.170.17", b"AEEL")
    with pytest.raises(ValueError, match="not a @reproduce_failure decorator"):
        parse_reproduce_failure("@seed(12)")
