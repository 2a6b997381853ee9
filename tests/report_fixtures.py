"""Builders of small, valid conformance reports (``docs/report-schema.md``, schema versions 1 and 2) for tests.

``make_report(torch="2.15.0", clauses=[clause("ACCUM-1", cpu="passed")])``
gives a complete report dict -- every field of the schema, ``verdict`` and
``totals`` derived from the clause records -- so a test only spells out what it
is about.  :func:`write_report` puts one on disk for the command-line tools.

Without ``modes`` the report is a schema-1 report of an eager run (like those in
``docs/reports/``); with ``modes`` it is a schema-2 report whose columns are
targets, a device in a mode::

    make_report(
        modes=["eager", "compile:aot_eager"],
        clauses=[clause("ACCUM-1", cpu="passed", targets={"cpu@compile:aot_eager": "not compiled"})],
    )

:func:`compiled_report` builds such a report in one call, from per-mode outcomes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

OUTCOMES = ("failed", "known failure", "not compiled", "skipped", "untested", "not applicable", "passed")
EAGER = "eager"
AREAS = {"ACCUM": "accumulation", "BWD": "backward", "HOOK": "hooks", "LEAF": "leaves"}


def record(outcome: str, detail: str = "", *, tests: Iterable[str] | None = None) -> dict:
    """An outcome record; ``detail`` is the ``message`` of a failure, else the ``reason``."""
    assert outcome in OUTCOMES, outcome
    is_failure = outcome == "failed"
    return {
        "outcome": outcome,
        "reason": "" if is_failure or outcome == "passed" else detail,
        "message": detail if is_failure else "",
        "tests": list(tests) if tests is not None else ["conformance/tests/test_x.py::test_it[cpu]"],
    }


def target(device: str, mode: str = EAGER) -> str:
    """A report column: ``cpu`` when eager, ``cpu@compile:aot_eager`` when compiled (``report_io.target_name``)."""
    return device if mode == EAGER else f"{device}@{mode}"


def clause(
    clause_id: str,
    title: str | None = None,
    *,
    area: str | None = None,
    basis: str | None = None,
    targets: dict[str, str | dict] | None = None,
    **devices: str | dict,
) -> dict:
    """A clause with a record per device keyword: ``clause("ACCUM-2", cpu="passed", cuda=record("failed", "..."))``.

    ``targets`` adds records keyed by target name (``{"cpu@compile:aot_eager": "not compiled"}``); a compiled
    target's record carries ``device`` and ``mode``, as the plugin writes it. Without ``basis`` the clause has no
    ``basis`` field, like the reports written before clauses carried one (``docs/reports/``); with it, ``basis``
    and ``basis_note`` as the plugin writes them now.
    """
    prefix = clause_id.rsplit("-", 1)[0]
    records = {}
    for name, value in {**devices, **(targets or {})}.items():
        entry = dict(value) if isinstance(value, dict) else record(value)
        device, _, mode = name.partition("@")
        if mode:
            entry |= {"device": device, "mode": mode}
        records[name] = entry
    entry = {
        "id": clause_id,
        "title": title or f"title of {clause_id}",
        "area": area or AREAS.get(prefix, prefix.lower()),
        "versions": ">=1.13",
        # the version range: a compiled target's 'not applicable' may come from the spec's Compiled field instead
        "applies": not any(r["outcome"] == "not applicable" for name, r in records.items() if "@" not in name),
        "devices": records,
    }
    if basis is not None:
        entry |= {"basis": basis, "basis_note": "" if basis == "documented" else f"why {clause_id} is {basis}"}
    return entry


def make_report(
    *,
    torch: str = "2.13.0+cpu",
    devices: Iterable[str] = ("cpu",),
    clauses: Iterable[dict] = (),
    suite_version: str = "0.1.0",
    modes: Iterable[str] | None = None,
    **environment: object,
) -> dict:
    """A complete schema-1 report; with ``modes`` a schema-2 report whose ``devices`` are the targets (every
    device in every mode, mode by mode, as the plugin lists them). ``environment`` keywords override the
    environment's fields."""
    physical = list(devices)
    devices = physical if modes is None else [target(d, m) for m in modes for d in physical]
    clauses = list(clauses)
    violated = any(r["outcome"] == "failed" for c in clauses for r in c["devices"].values())
    env = {
        "torch": torch,
        "torch_git": "0123456789abcdef0123456789abcdef01234567",
        "torch_debug": False,
        "torch_cuda": None,
        "torch_hip": None,
        "cudnn": None,
        "python": "3.11.7",
        "python_implementation": "CPython",
        "platform": "Linux-6.1-x86_64-with-glibc2.36",
        "machine": "x86_64",
        "numpy": "2.1.0",
        "hypothesis": "6.100.0",
        "hypothesis_profile": "ci",
        "hypothesis_seed": None,
        "hypothesis_derandomize": True,
        "device_status": {
            device: {"available": True, "reason": "", "name": "x86_64" if device == "cpu" else None}
            for device in physical
        },
    }
    env.update(environment)
    report = {
        "schema": "autograd-conformance-report",
        "schema_version": 1 if modes is None else 2,
        "suite_version": suite_version,
        "created": "2026-11-22T10:15:00Z",
        "exit_status": 1 if violated else 0,
        "verdict": "violated" if violated else "conforms",
        "environment": env,
        "devices": devices,
        "totals": {device: tally(clauses, device) for device in devices},
        "clauses": clauses,
        "expectations": {"path": None, "applied": [], "stale": []},
        "tests": [],
    }
    if modes is not None:
        report["modes"] = list(modes)
    return report


def compiled_report(
    outcomes: dict[str, dict[str, str | dict]],
    *,
    mode: str = "compile:aot_eager",
    device: str = "cpu",
    modes: Iterable[str] | None = None,
    **kwargs: object,
) -> dict:
    """A schema-2 report of a run in ``eager`` and ``mode`` on ``device``, from
    ``{clause id: {mode: outcome or record}}``: ``compiled_report({"ACCUM-1": {"eager": "passed",
    "compile:aot_eager": "not compiled"}})``. A mode left out of a clause's entry has no record."""
    modes = list(modes or [EAGER, mode])
    clauses = [
        clause(cid, targets={target(device, m): value for m, value in per_mode.items()})
        for cid, per_mode in outcomes.items()
    ]
    return make_report(devices=[device], modes=modes, clauses=clauses, **kwargs)


def tally(clauses: list[dict], device: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in clauses:
        if device in entry["devices"]:
            outcome = entry["devices"][device]["outcome"]
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def absent_device(report: dict, device: str, reason: str) -> dict:
    """Mark ``device`` absent: unavailable in ``device_status`` and every clause ``skipped`` there (on each of
    its targets, in a schema-2 report)."""
    report["environment"]["device_status"][device] = {"available": False, "reason": reason, "name": None}
    targets = [device] + [t for t in report["devices"] if t.startswith(f"{device}@")]
    for name in targets:
        for entry in report["clauses"]:
            entry["devices"][name] = record("skipped", reason)
            if "@" in name:
                entry["devices"][name] |= {"device": device, "mode": name.partition("@")[2]}
        report["totals"][name] = tally(report["clauses"], name)
    return report


def write_report(directory: Path, name: str, report: dict) -> str:
    """Write ``report`` as ``directory/name`` and return the path as a string (for ``main([...])``)."""
    path = directory / name
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return str(path)
