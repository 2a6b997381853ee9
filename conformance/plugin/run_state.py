"""What the plugin knows of one pytest session: the specs, devices and expectations in force, and each test's record.

Built by ``pytest_configure`` (``conformance/plugin/__init__.py``) and shared by the
plugin's parts: collection rules (``collection.py``), outcome recording
(``recording.py``), known failures (``known_failures.py``) and the report and
verdict (``verdict.py``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..reporting.report import TestRecord
from ..spec.expectations import Expectation
from ..spec.registry import SpecRegistry

SPEC_MARKER = "spec"
PACKAGE_TESTS = Path(__file__).resolve().parent.parent / "tests"
#: Benchmarks cite clauses like tests (checked the same way) but have no outcome in the report.
PACKAGE_BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@dataclass(eq=False)
class RunState:
    registry: SpecRegistry
    devices: list[str]
    explicit_devices: bool
    profile: str
    clause_filter: frozenset[str]
    conformance_roots: list[Path]
    expectations: list[Expectation] = field(default_factory=list)  # those in force for this torch
    expectations_path: Path | None = None
    seed: object = None
    modes: list[str] = field(default_factory=lambda: ["eager"])
    records: dict[str, TestRecord] = field(default_factory=dict)
    citations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    expected_failures: dict[Expectation, list[str]] = field(default_factory=lambda: defaultdict(list))
    report_path: Path | None = None

    def is_conformance_test(self, item: pytest.Item) -> bool:
        return _under(item, self.conformance_roots)

    def is_conformance_path(self, path) -> bool:
        resolved = Path(str(path)).resolve()
        return any(root == resolved or root in resolved.parents for root in self.conformance_roots)

    def is_benchmark(self, item: pytest.Item) -> bool:
        return _under(item, [PACKAGE_BENCHMARKS])

    # ------------------------------------------------------------------ across pytest-xdist processes

    def collected(self) -> dict:
        """What collection learnt, as plain data: each conformance test (in collection order, outcome not yet
        known), the tests citing each clause, and the tests each expectation marks (by its index in
        :attr:`expectations`).  An xdist worker sends it to the controller, which collects nothing itself
        (:meth:`adopt_collected`); every worker collects the same tests, so any one worker's copy will do."""
        index = {expectation: i for i, expectation in enumerate(self.expectations)}
        return {
            "records": [[r.nodeid, list(r.clauses), r.device, r.mode] for r in self.records.values()],
            "citations": {cid: list(nodeids) for cid, nodeids in self.citations.items()},
            "expected_failures": [[index[e], list(nodeids)] for e, nodeids in self.expected_failures.items()],
        }

    def adopt_collected(self, data: dict) -> None:
        """Take over a worker's :meth:`collected` (the controller's expectations are read from the same file)."""
        self.records = {
            nodeid: TestRecord(nodeid, tuple(clauses), device, mode=mode) for nodeid, clauses, device, mode in data["records"]
        }
        self.citations = defaultdict(list, {cid: list(nodeids) for cid, nodeids in data["citations"].items()})
        self.expected_failures = defaultdict(
            list, {self.expectations[i]: list(nodeids) for i, nodeids in data["expected_failures"]}
        )


def _under(item: pytest.Item, roots: list[Path]) -> bool:
    path = Path(str(item.path)).resolve()
    return any(root == path or root in path.parents for root in roots)
