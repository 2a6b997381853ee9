"""``--replay REPORT``: run again, with the very example that failed, the failed tests a report recorded.

A failed property test's record in the report keeps the ``@reproduce_failure``
decorator hypothesis printed under the failure (``tests[].reproduce``,
``recording.py``).  With ``--replay REPORT`` the run keeps only the tests that
failed in that report (``--clause`` narrows them to some clauses, as always)
and runs each with its recorded example, exactly as if the decorator had been
added to the test's source: hypothesis draws nothing else, and says so if the
example no longer fails (``DidNotReproduce``).  Failed tests without a blob (not
property tests) run as they are.  Hypothesis refuses a blob from another
hypothesis version; install the version the report names
(``environment.hypothesis``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ..reporting.report_io import ReportError, load_report

__all__ = ["FailureReplay", "parse_reproduce_failure"]

_DECORATOR = re.compile(r"@reproduce_failure\((?P<args>.*)\)\s*$")


def parse_reproduce_failure(decorator: str) -> tuple[str, bytes]:
    """``("6.170.17", b"AEEL")`` from ``@reproduce_failure('6.170.17', b'AEEL')``."""
    match = _DECORATOR.match(decorator.strip())
    if not match:
        raise ValueError(f"not a @reproduce_failure decorator: {decorator!r}")
    version, blob = ast.literal_eval(f"({match['args']},)")
    if not isinstance(version, str) or not isinstance(blob, bytes):
        raise ValueError(f"not a @reproduce_failure decorator: {decorator!r}")
    return version, blob


class FailureReplay:
    """Keeps a report's failed tests and runs each with its recorded example."""

    def __init__(self, report_path: Path) -> None:
        try:
            report = load_report(report_path)
        except ReportError as exc:
            raise pytest.UsageError(f"--replay: {exc}") from None
        failed = [t for t in report["tests"] if t["outcome"] in ("failed", "error")]
        if not failed:
            raise pytest.UsageError(f"--replay: {report_path} records no failed test")
        self.report_path = report_path
        self.blobs: dict[str, tuple[str, bytes] | None] = {}
        for test in failed:
            decorator = test.get("reproduce")
            self.blobs[test["nodeid"]] = parse_reproduce_failure(decorator) if decorator else None

    @pytest.hookimpl(trylast=True)  # after --clause and -k have deselected theirs
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        keep = [item for item in items if item.nodeid in self.blobs]
        dropped = [item for item in items if item.nodeid not in self.blobs]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep

    def pytest_report_header(self, config: pytest.Config) -> str:
        with_blob = sum(blob is not None for blob in self.blobs.values())
        return (
            f"replaying {len(self.blobs)} failed test(s) of {self.report_path}, "
            f"{with_blob} with the recorded failing example"
        )

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        blob = self.blobs.get(item.nodeid)
        function = getattr(item, "obj", None)
        if blob is None or not hasattr(getattr(function, "hypothesis", None), "inner_test"):
            yield
            return
        # what @reproduce_failure(version, blob) sets, for this test id only (its parametrizations share the function)
        function._hypothesis_internal_use_reproduce_failure = blob
        try:
            yield
        finally:
            function._hypothesis_internal_use_reproduce_failure = None
