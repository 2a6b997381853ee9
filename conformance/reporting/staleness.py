"""When an entry of the expectations file is *stale*: the rule, as a pure function of plain data.

The plugin applies it at the end of a run (``conformance/plugin/known_failures.py``,
``stale_expectations``) and ``python -m conformance merge`` applies it again to
the tests of the merged shard reports (``merge.py``), so a merged report lists
exactly the stale entries a serial run would.  Like the rest of
``conformance.reporting`` it imports no torch and no pytest.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

__all__ = ["NO_MATCH", "PASSED", "stale_why"]

#: why an entry is stale: it marked no collected test (a typo, or the test is gone)
NO_MATCH = "it matches no collected test"
#: why an entry is stale: the tests it marked ran and passed (the defect is fixed)
PASSED = "its tests passed: the failure is gone, remove the entry"


def stale_why(
    *,
    clause: str,
    devices: Iterable[str] | None,
    modes: Iterable[str] | None,
    matched_outcomes: Collection[str],
    run_devices: Iterable[str],
    run_modes: Iterable[str],
    clause_filter: Collection[str] = (),
    cited_clauses: Collection[str] | None = None,
) -> str | None:
    """Why an expectation in force is stale (:data:`NO_MATCH`, :data:`PASSED`), or None when it is not.

    ``clause``, ``devices``, ``modes``: the entry's (None: every device, every
    mode). ``matched_outcomes``: the outcomes (``tests[].outcome``) of the
    collected tests the entry marked, one per test. ``run_devices``,
    ``run_modes``: the run's. ``clause_filter``: the run's ``--clause`` IDs
    (empty: every clause). ``cited_clauses``: the clauses some collected test
    cites (None: the caller knows the entry's clause is cited).

    Nothing is said of an entry whose tests were not asked for: its clause is
    not selected, none of its devices or modes is in the run, or no collected
    test cites its clause (a subset of the files ran).
    """
    if clause_filter and clause not in clause_filter:
        return None  # its tests were not selected: nothing to say
    if devices and not set(devices) & set(run_devices):
        return None  # none of its devices is in this run
    if modes and not set(modes) & set(run_modes):
        return None  # none of its modes is in this run
    if cited_clauses is not None and clause not in cited_clauses:
        return None  # no test of its clause was collected: nothing to say
    if not matched_outcomes:
        return NO_MATCH
    outcomes = set(matched_outcomes)
    if "known failure" not in outcomes and "passed" in outcomes:
        return PASSED
    return None
