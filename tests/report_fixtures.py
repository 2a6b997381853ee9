"""Builders of small, valid conformance reports (``docs/report-schema.md``, schema version 1) for tests.

``make_report(torch="2.15.0", clauses=[clause("ACCUM-1", cpu="passed")])``
gives a complete report dict -- every field of the schema, ``verdict`` and
``totals`` derived from the clause records -- so a test only spells out what it
is about.  :func:`write_report` puts one on disk for the command-line tools.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

OUTCOMES = ("failed", "known failure", "skipped", "untested", "not applicable", "passed")
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


def clause(
    clause_id: str, title: str | None = None, *, area: str | None = None, basis: str | None = None, **devices: str | dict
) -> dict:
    """A clause with a record per device keyword: ``clause("ACCUM-2", cpu="passed", cuda=record("failed", "..."))``.

    Without ``basis`` the clause has no ``basis`` field, like the reports written before clauses carried one
    (``docs/reports/``); with it, ``basis`` and ``basis_note`` as the plugin writes them now.
    """
    prefix = clause_id.rsplit("-", 1)[0]
    records = {device: value if isinstance(value, dict) else record(value) for device, value in devices.items()}
    entry = {
        "id": clause_id,
        "title": title or f"title of {clause_id}",
        "area": area or AREAS.get(prefix, prefix.lower()),
        "versions": ">=1.13",
        "applies": not any(r["outcome"] == "not applicable" for r in records.values()),
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
    **environment: object,
) -> dict:
    """A complete schema-1 report; ``environment`` keywords override the environment's fields."""
    devices = list(devices)
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
            for device in devices
        },
    }
    env.update(environment)
    return {
        "schema": "autograd-conformance-report",
        "schema_version": 1,
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


def tally(clauses: list[dict], device: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in clauses:
        if device in entry["devices"]:
            outcome = entry["devices"][device]["outcome"]
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def absent_device(report: dict, device: str, reason: str) -> dict:
    """Mark ``device`` absent: unavailable in ``device_status`` and every clause ``skipped`` there."""
    report["environment"]["device_status"][device] = {"available": False, "reason": reason, "name": None}
    for entry in report["clauses"]:
        entry["devices"][device] = record("skipped", reason)
    report["totals"][device] = tally(report["clauses"], device)
    return report


def write_report(directory: Path, name: str, report: dict) -> str:
    """Write ``report`` as ``directory/name`` and return the path as a string (for ``main([...])``)."""
    path = directory / name
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return str(path)
