"""Known failures in a run: which tests an expectation marks, which entries are stale, what the report says of them."""

from __future__ import annotations

import pytest

from ..spec.expectations import Expectation
from .run_state import RunState


def mark_expected_failures(
    run: RunState, item: pytest.Item, clause_ids: tuple[str, ...], device_name: str | None, mode: str = "eager"
) -> None:
    """Mark ``item`` xfail (non-strict) for every expectation in force that matches it."""
    matching = [e for e in run.expectations if e.matches(item.nodeid, clause_ids, device_name, mode)]
    for expectation in matching:
        run.expected_failures[expectation].append(item.nodeid)
    if matching:
        reason = "; ".join(f"{e.clause} expected to fail: {e.reason} [{e.source}]" for e in matching)
        item.add_marker(pytest.mark.xfail(reason=reason, strict=False))


def stale_expectations(run: RunState) -> list[tuple[Expectation, str]]:
    """Entries in force that matched no failing test: ``(entry, why it is stale)``."""
    stale = []
    for expectation in run.expectations:
        if run.clause_filter and expectation.clause not in run.clause_filter:
            continue  # its tests were not selected: nothing to say
        matched = [run.records[n] for n in run.expected_failures.get(expectation, []) if n in run.records]
        outcomes = {record.outcome for record in matched}
        if expectation.devices and not set(expectation.devices) & set(run.devices):
            continue  # none of its devices is in this run
        if expectation.modes and not set(expectation.modes) & set(run.modes):
            continue  # none of its modes is in this run
        if expectation.clause not in run.citations:
            continue  # no test of its clause was collected (a subset of the files ran): nothing to say
        if not matched:
            stale.append((expectation, "it matches no collected test"))
        elif "known failure" not in outcomes and "passed" in outcomes:
            stale.append((expectation, "its tests passed: the failure is gone, remove the entry"))
    return stale


def expectations_summary(run: RunState) -> dict:
    return {
        "path": str(run.expectations_path) if run.expectations_path else None,
        "applied": [
            {**e.to_json(), "source": e.source, "matched": run.expected_failures.get(e, [])} for e in run.expectations
        ],
        "stale": [{**e.to_json(), "source": e.source, "why": why} for e, why in stale_expectations(run)],
    }
