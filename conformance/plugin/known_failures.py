"""Known failures in a run: which tests an expectation marks, which entries are stale, what the report says of them."""

from __future__ import annotations

import pytest

from ..reporting.staleness import stale_why
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
    """Entries in force that matched no failing test: ``(entry, why it is stale)`` (the rule: ``reporting/staleness.py``)."""
    stale = []
    for expectation in run.expectations:
        matched = [run.records[n] for n in run.expected_failures.get(expectation, []) if n in run.records]
        why = stale_why(
            clause=expectation.clause,
            devices=expectation.devices,
            modes=expectation.modes,
            matched_outcomes=[record.outcome for record in matched],
            run_devices=run.devices,
            run_modes=run.modes,
            clause_filter=run.clause_filter,
            cited_clauses=run.citations,
        )
        if why is not None:
            stale.append((expectation, why))
    return stale


def expectations_summary(run: RunState) -> dict:
    return {
        "path": str(run.expectations_path) if run.expectations_path else None,
        "applied": [
            {**e.to_json(), "source": e.source, "matched": run.expected_failures.get(e, [])} for e in run.expectations
        ],
        "stale": [{**e.to_json(), "source": e.source, "why": why} for e, why in stale_expectations(run)],
    }
