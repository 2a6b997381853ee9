"""Recording: each conformance test's outcome, from pytest's reports, into its ``TestRecord``."""

from __future__ import annotations

import re

import pytest

from .modes import NOT_COMPILED
from .run_state import RunState


class OutcomeRecorder:
    def __init__(self, run: RunState) -> None:
        self.run = run

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = self.run.records.get(report.nodeid)
        if record is None:
            return
        if report.failed:
            if record.outcome not in ("failed", "error"):
                # "???": xdist's report of a test that crashed its worker (distributed.py): the test failed
                record.outcome = "failed" if report.when in ("call", "???") else "error"
                record.message = _failure_message(report)
                record.reproduce = reproduce_failure_decorator(report.longreprtext)
        elif report.skipped and hasattr(report, "wasxfail"):
            record.outcome = "known failure"
            record.message = report.wasxfail
        elif report.skipped and ("conformance_outcome", NOT_COMPILED) in report.user_properties:
            record.outcome = NOT_COMPILED
            record.message = report.longrepr[2].removeprefix(f"{NOT_COMPILED}: ")
        elif report.skipped:
            if record.outcome == "not run":
                record.outcome = "skipped"
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
                record.message = reason.removeprefix("Skipped: ")
        elif report.when == "call" and record.outcome == "not run":
            record.outcome = "passed"


#: what hypothesis prints under a failure (settings ``print_blob``): the decorator that replays the example
_REPRODUCE_FAILURE = re.compile(r"@reproduce_failure\('[^']+', b'[^']*'\)")


def reproduce_failure_decorator(text: str) -> str | None:
    """The ``@reproduce_failure('VERSION', b'BLOB')`` hypothesis printed in a failure's text, if any (the last)."""
    found = _REPRODUCE_FAILURE.findall(text or "")
    return found[-1] if found else None


def _failure_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    return str(report.longrepr).strip().splitlines()[-1] if report.longrepr else ""
