"""Expected failures render their tracebacks in pytest's cheap ``native`` style (conformance/plugin/tracebacks.py)."""

from __future__ import annotations

import pytest

from tests.test_plugin import Suite

TESTS = """
    @pytest.mark.spec("PASS-1")
    def test_fails_unexpectedly():
        assert 1 == 2

    @pytest.mark.spec("FAIL-1")
    @pytest.mark.xfail(reason="a known defect", strict=True)
    def test_fails_as_expected():
        assert 1 == 2
    """
#: writes each failure's rendered traceback where the test can read it
CONFTEST = """
    def pytest_runtest_logreport(report):
        if report.when == "call" and report.longrepr is not None:
            with open(report.nodeid.split("::")[1] + ".txt", "w") as out:
                out.write(report.longreprtext)
    """


@pytest.fixture
def suite(pytester: pytest.Pytester) -> Suite:
    suite = Suite(pytester)
    suite.write_tests(TESTS)
    pytester.makeconftest(CONFTEST)
    return suite


def test_an_expected_failure_is_rendered_natively_and_an_unexpected_one_as_pytest_renders_it(suite):
    suite.run("--conformance-report=").assert_outcomes(failed=1, xfailed=1)
    expected = (suite.pytester.path / "test_fails_as_expected.txt").read_text()
    unexpected = (suite.pytester.path / "test_fails_unexpectedly.txt").read_text()
    assert expected.startswith("Traceback (most recent call last):") and "AssertionError" in expected
    assert not unexpected.startswith("Traceback") and "def test_fails_unexpectedly():" in unexpected


def test_runxfail_keeps_pytests_rendering_for_expected_failures(suite):
    suite.run("--conformance-report=", "--runxfail").assert_outcomes(failed=2)
    expected = (suite.pytester.path / "test_fails_as_expected.txt").read_text()
    assert "def test_fails_as_expected():" in expected
