"""Collection rules: every conformance test cites known clauses; --clause selects; version ranges skip; known failures xfail."""

from __future__ import annotations

import pytest
import torch

from ..reporting.report import TestRecord
from .known_failures import mark_expected_failures
from .modes import item_mode, target_unavailable
from .run_state import SPEC_MARKER, RunState


class CollectionRules:
    def __init__(self, run: RunState) -> None:
        self.run = run

    @pytest.hookimpl(tryfirst=True)  # see every collected item, before -k/-m deselect some
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        problems: list[str] = []
        keep: list[pytest.Item] = []
        deselected: list[pytest.Item] = []
        for item in items:
            conformance_test = self.run.is_conformance_test(item)
            if not conformance_test and not self.run.is_benchmark(item):
                keep.append(item)
                continue
            clause_ids = tuple(dict.fromkeys(arg for mark in item.iter_markers(SPEC_MARKER) for arg in mark.args))
            unknown = [cid for cid in clause_ids if cid not in self.run.registry]
            if not clause_ids:
                kind = "conformance test" if conformance_test else "benchmark"
                problems.append(f"{item.nodeid}: {kind} cites no clause (add @pytest.mark.spec('AREA-N'))")
                continue
            if unknown:
                problems.append(f"{item.nodeid}: cites unknown clause ID(s) {', '.join(unknown)}")
                continue
            if conformance_test:
                for cid in clause_ids:
                    self.run.citations[cid].append(item.nodeid)
            if self.run.clause_filter and not self.run.clause_filter.intersection(clause_ids):
                deselected.append(item)
                continue
            excluded = [self.run.registry[cid] for cid in clause_ids if not self.run.registry[cid].applies_to(torch.__version__)]
            if excluded:
                reason = "; ".join(f"{c.id} applies to torch {c.versions}, installed torch is {torch.__version__}" for c in excluded)
                item.add_marker(pytest.mark.skip(reason=reason))
            if not conformance_test:  # a benchmark: timed, not judged
                keep.append(item)
                continue
            callspec = getattr(item, "callspec", None)
            device_name = callspec.params.get("device") if callspec else None
            mode = item_mode(item)
            self.run.records[item.nodeid] = TestRecord(item.nodeid, clause_ids, device_name, mode=mode)
            not_compilable = [self.run.registry[cid].not_applicable_in(mode) for cid in clause_ids]
            if not excluded and all(not_compilable):
                excluded = True
                item.add_marker(pytest.mark.skip(reason="; ".join(not_compilable)))
            unavailable = target_unavailable(device_name, mode)
            if not excluded and unavailable:
                excluded = True
                item.add_marker(pytest.mark.skip(reason=unavailable))
            if not excluded:
                mark_expected_failures(self.run, item, clause_ids, device_name, mode)
            keep.append(item)
        if problems:
            raise pytest.UsageError("invalid clause citations:\n  " + "\n  ".join(problems))
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = keep
