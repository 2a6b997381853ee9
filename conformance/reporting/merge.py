"""``python -m conformance merge``: one report from the shard reports of one run.

A run split across CI jobs (``pytest --shard I/N``, ``conformance/plugin/shards.py``)
writes one report per shard.  Every shard collects the whole suite, so each
shard report lists every collected test, in the same order; the tests another
shard ran are ``not run`` in it.  The merge takes, for each test, the record of
the shard that ran it, and recomputes from those tests what a serial run
computes from its own: each clause's outcome per target
(:func:`conformance.reporting.report.clause_outcomes`), the totals, the verdict,
and the stale expectations (:func:`conformance.reporting.staleness.stale_why`).
The worst exit status of the shards is the run's.  The result does not depend
on the order of the reports, and equals the serial run's report apart from
``created`` (the latest shard's).

Reports that are not shards of one run are refused with a :class:`ReportError`:
different schema versions, suite versions, torch versions, hypothesis profiles
or seeds, devices or modes, clauses, expectations, or lists of tests; and a test
that ran in two shards with different outcomes (overlapping shards).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from .report import TestRecord, clause_outcomes, tally
from .report_io import ReportError, device_of, mode_of, report_modes, target_name
from .staleness import stale_why

__all__ = ["MergeResult", "merge_reports"]

#: pytest's exit statuses, least severe first: a shard that selected no test (5) is fine when another ran them
EXIT_SEVERITY = (0, 5, 1, 2, 3, 4)
NOT_RUN = "not run"


@dataclass
class MergeResult:
    report: dict
    #: node ids of the tests that ran in no shard (a shard report missing?)
    never_ran: list[str]


def merge_reports(named: Sequence[tuple[str, Mapping]]) -> MergeResult:
    """Merge ``(name, report)`` pairs, validated reports (:func:`report_io.load_report`) of the shards of one run."""
    if not named:
        raise ReportError("no report to merge")
    # One canonical order, so that nothing taken from "the first report" depends on the order given.
    named = sorted(named, key=lambda pair: (_canonical(pair[1]), pair[0]))
    _check_same_run(named)
    base_name, base = named[0]
    tests, never_ran = _merged_tests(named)
    modes = report_modes(base)
    devices = list(dict.fromkeys(device_of(target) for target in base["devices"]))
    if [target_name(d, m) for m in modes for d in devices] != list(base["devices"]):
        raise ReportError(f"{base_name}: 'devices' does not list every device in every mode, mode by mode")
    status = {name: _Status(entry) for name, entry in (base["environment"].get("device_status") or {}).items()}
    missing = [d for d in devices if d not in status]
    if missing:
        raise ReportError(f"{base_name}: 'environment.device_status' has no entry for {', '.join(map(repr, missing))}")
    clauses = {entry["id"]: _ReportedClause(entry, modes) for entry in base["clauses"]}
    known = {f.name for f in fields(TestRecord)}
    records = [
        TestRecord(**{**{k: v for k, v in entry.items() if k in known}, "clauses": tuple(entry["clauses"])})
        for entry in tests
    ]
    outcomes = clause_outcomes(
        clauses,
        records,
        devices,
        torch_version=base["environment"]["torch"],
        device_status=status,
        modes=modes,
    )
    violated = any(r["outcome"] == "failed" for per_target in outcomes.values() for r in per_target.values())
    merged = dict(base)
    merged["environment"] = {key: value for key, value in base["environment"].items() if key != "shard"}
    merged.update(
        created=max(report.get("created", "") for _, report in named),
        exit_status=max((report["exit_status"] for _, report in named), key=_severity),
        verdict="violated" if violated else "conforms",
        totals={target: tally(outcomes, target) for target in base["devices"]},
        clauses=[{**entry, "devices": outcomes[entry["id"]]} for entry in base["clauses"]],
        expectations=_merged_expectations(named, tests, devices, modes),
        tests=tests,
    )
    return MergeResult(merged, never_ran)


# ----------------------------------------------------------------------------- one run?


def _check_same_run(named: Sequence[tuple[str, Mapping]]) -> None:
    """Refuse reports that are not shards of one run, naming the first two that differ and how."""
    checks = [
        ("schema versions", lambda r: r["schema_version"]),
        ("suite versions", lambda r: r["suite_version"]),
        ("torch versions", lambda r: r["environment"]["torch"]),
        ("hypothesis profiles", lambda r: r["environment"].get("hypothesis_profile")),
        ("hypothesis seeds", lambda r: r["environment"].get("hypothesis_seed")),
        ("devices", lambda r: r["devices"]),
        ("modes", report_modes),
        ("clauses", lambda r: [c["id"] for c in r["clauses"]]),
        ("expectations files", lambda r: (r.get("expectations") or {}).get("path")),
    ]
    first_name, first = named[0]
    _check_complete_shards(named)
    for what, value in checks:
        for name, report in named[1:]:
            if value(report) != value(first):
                raise ReportError(
                    f"{first_name} ({_shown(value(first))}) and {name} ({_shown(value(report))}) come from different "
                    f"{what}; expected the shard reports of one run"
                )
    for name, report in named[1:]:
        for mine, theirs in zip(first["clauses"], report["clauses"]):
            if _without(mine, "devices") != _without(theirs, "devices"):
                raise ReportError(
                    f"{first_name} and {name} describe clause {mine['id']} differently; "
                    "expected the shard reports of one run"
                )
        if _applied(first) != _applied(report):
            raise ReportError(
                f"{first_name} and {name} apply different expectations (or mark different tests with them); "
                "expected the shard reports of one run"
            )


def _check_complete_shards(named: Sequence[tuple[str, Mapping]]) -> None:
    """Where the reports say which shard they are (``environment.shard``, ``I/N``), they must be shards 1..N of N,
    each once: a missing shard report would otherwise leave its clauses ``untested``, which no gate flags."""
    shards = [(name, report["environment"].get("shard")) for name, report in named]
    if all(shard is None for _, shard in shards):
        return
    unsharded = [name for name, shard in shards if shard is None]
    if unsharded:
        sharded = next(name for name, shard in shards if shard is not None)
        raise ReportError(f"{unsharded[0]} is not a shard report (no environment.shard) but {sharded} is")
    counts = {int(shard.split("/")[1]) for _, shard in shards}
    if len(counts) > 1:
        raise ReportError(f"the reports are shards of different splits ({', '.join(s for _, s in shards)}); expected I/N with one N")
    (count,) = counts
    seen: dict[int, str] = {}
    for name, shard in shards:
        index = int(shard.split("/")[0])
        if index in seen:
            raise ReportError(f"{seen[index]} and {name} are both shard {shard}")
        seen[index] = name
    missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in seen]
    if missing:
        raise ReportError(f"shard report(s) missing: {', '.join(missing)}; expected shards 1..{count} of {count}")


def _merged_tests(named: Sequence[tuple[str, Mapping]]) -> tuple[list[dict], list[str]]:
    """Each test's record from the shard that ran it (the first report's ``not run`` record when none did), in
    the order every report lists them; and the node ids of the tests that ran nowhere."""
    first_name, first = named[0]
    order = [entry["nodeid"] for entry in first["tests"]]
    for name, report in named[1:]:
        theirs = [entry["nodeid"] for entry in report["tests"]]
        if theirs != order:
            raise ReportError(f"{first_name} and {name} list different tests ({_first_difference(order, theirs)}); "
                              "expected the shard reports of one run (every shard collects the same tests)")
    merged, never_ran = [], []
    for index, nodeid in enumerate(order):
        ran = [(name, report["tests"][index]) for name, report in named if report["tests"][index]["outcome"] != NOT_RUN]
        if not ran:
            merged.append(first["tests"][index])
            never_ran.append(nodeid)
            continue
        (name, entry), *others = ran
        for other_name, other in others:
            if other["outcome"] != entry["outcome"]:
                raise ReportError(
                    f"{nodeid} ran in {name} ({entry['outcome']}) and in {other_name} ({other['outcome']}); "
                    "expected each test to run in one shard (overlapping shards?)"
                )
        merged.append(entry)
    return merged, never_ran


def _first_difference(mine: list[str], theirs: list[str]) -> str:
    for index, (a, b) in enumerate(zip(mine, theirs)):
        if a != b:
            return f"tests[{index}] is {a!r} in one, {b!r} in the other"
    return f"{len(mine)} tests in one, {len(theirs)} in the other"


# ----------------------------------------------------------------------------- expectations


def _merged_expectations(
    named: Sequence[tuple[str, Mapping]], tests: list[dict], devices: list[str], modes: list[str]
) -> dict:
    """The expectations object of the merged run: ``path`` and ``applied`` as every shard has them (checked to
    agree), ``stale`` recomputed on the merged tests.

    An entry whose tests were not asked for (``--clause`` left its clause out,
    no collected test cites it) is stale in no shard; one whose tests were is
    stale in a shard when its rule says so there. So an entry stale in the
    merged run is stale in at least one shard (the one that ran its passing
    test, or every shard when it matches no test), and the merge recomputes
    the rule for those entries only, on the merged outcomes of its tests.
    """
    base = named[0][1].get("expectations") or {"path": None, "applied": [], "stale": []}
    outcome_of = {entry["nodeid"]: entry["outcome"] for entry in tests}
    candidates: dict[str, dict] = {}
    for _, report in named:
        for entry in (report.get("expectations") or {}).get("stale", []):
            candidates.setdefault(_identity(entry), entry)
    stale = []
    for applied in base.get("applied", []):
        candidate = candidates.get(_identity(applied))
        if candidate is None:
            continue
        why = stale_why(
            clause=applied["clause"],
            devices=applied.get("devices"),
            modes=applied.get("modes"),
            matched_outcomes=[outcome_of[n] for n in applied.get("matched", []) if n in outcome_of],
            run_devices=devices,
            run_modes=modes,
        )
        if why is not None:
            stale.append({**candidate, "why": why})
    return {**base, "stale": stale}


def _identity(entry: Mapping) -> str:
    """An expectation entry without what the run adds to it (its matched tests, why it is stale)."""
    return json.dumps({k: v for k, v in entry.items() if k not in ("matched", "why")}, sort_keys=True)


def _applied(report: Mapping) -> list:
    return (report.get("expectations") or {}).get("applied", [])


# ----------------------------------------------------------------------------- the report's clauses as ClauseLike


class _ReportedClause:
    """What :func:`report.clause_outcomes` reads of a clause, from a report's clause entry: whether its version
    range includes the torch that ran (``applies``), and why it cannot hold in a compiled mode (the reason of its
    ``not applicable`` records there: that outcome does not depend on the tests, so every shard has it)."""

    def __init__(self, entry: Mapping, modes: list[str]) -> None:
        self.entry = entry
        self.versions = entry.get("versions", "")
        self._not_applicable = {}
        if entry.get("applies", True):
            for target, record in entry["devices"].items():
                if record["outcome"] == "not applicable":
                    self._not_applicable.setdefault(mode_of(target), record.get("reason", ""))

    def applies_to(self, torch_version: str) -> bool:
        return bool(self.entry.get("applies", True))

    def not_applicable_in(self, mode: str) -> str | None:
        return self._not_applicable.get(mode)


@dataclass(frozen=True)
class _Status:
    """A device's availability as the report's ``environment.device_status`` gives it."""

    entry: Any

    @property
    def available(self) -> bool:
        return bool(self.entry.get("available", True))

    @property
    def reason(self) -> str:
        return str(self.entry.get("reason") or "")


# ----------------------------------------------------------------------------- helpers


def _canonical(report: Mapping) -> str:
    return json.dumps(report.get("environment"), sort_keys=True) + str(report.get("created", ""))


def _severity(status: int) -> int:
    return EXIT_SEVERITY.index(status) if status in EXIT_SEVERITY else len(EXIT_SEVERITY)


def _without(entry: Mapping, key: str) -> dict:
    return {k: v for k, v in entry.items() if k != key}


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return "none" if value is None else str(value)

