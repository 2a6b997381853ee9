"""Clause-by-clause outcomes of a run, and the JSON report built from them.

This module imports no torch: the plugin probes the devices and collects the
environment (:mod:`conformance.plugin.environment`) and hands both in.

The report's layout is documented in ``docs/report-schema.md`` (schema version
:data:`REPORT_SCHEMA_VERSION`); change that document with this module.

A clause's outcome on a device (worst first, see :data:`OUTCOMES`):

* ``failed`` -- a test of the clause failed or errored there;
* ``known failure`` -- a test failed, but the expectations file lists it;
* ``not compiled`` -- in a compiled mode, its tests passed but torch.compile did not compile the
  program whole (a graph break, a recompile-limit fallback) or the tests compile nothing;
* ``skipped`` -- all its tests were skipped (e.g. the device is absent);
* ``untested`` -- none of its tests ran (deselected, interrupted);
* ``not applicable`` -- its version range excludes the installed torch, or its spec says it cannot
  be expressed in compiled code (its ``Compiled`` field) and the mode is a compiled one;
* ``passed`` -- at least one test passed and none failed.
"""

from __future__ import annotations

import datetime
import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Mapping, Protocol

from .. import __version__
from .report_io import (  # the reader owns the schema
    EAGER,
    OUTCOMES,
    REPORT_SCHEMA,
    REPORT_SCHEMA_VERSION,
    count_outcomes,
    target_name,
    write_text_atomically,
)

__all__ = [
    "DEVICE_INDEPENDENT",
    "ClauseLike",
    "DeviceAvailability",
    "OUTCOMES",
    "REPORT_SCHEMA",
    "REPORT_SCHEMA_VERSION",
    "TestRecord",
    "build_report",
    "clause_outcomes",
    "tally",
    "write_json_atomically",
]

class DeviceAvailability(Protocol):
    """Whether a device could be used, and why not (:class:`conformance.plugin.devices.DeviceStatus` is one)."""

    @property
    def available(self) -> bool: ...

    @property
    def reason(self) -> str: ...


class ClauseLike(Protocol):
    """What the builder reads of a clause (:class:`conformance.spec.registry.Clause` is one)."""

    @property
    def title(self) -> str: ...

    @property
    def path(self) -> Path: ...  # the spec file; its stem is the clause's area

    @property
    def area(self) -> str: ...  # the spec file's title

    @property
    def versions(self) -> object: ...  # the version range, shown with str()

    @property
    def basis(self) -> str: ...

    @property
    def basis_note(self) -> str: ...

    def applies_to(self, torch_version: str) -> bool: ...

    def not_applicable_in(self, mode: str) -> str | None: ...  # why the clause cannot hold in ``mode``, or None


#: the ``device`` of tests without a ``device`` argument (behaviour that does not depend on one)
DEVICE_INDEPENDENT = None


@dataclass
class TestRecord:
    nodeid: str
    clauses: tuple[str, ...]
    device: str | None
    outcome: str = "not run"  # passed | failed | error | skipped | known failure | not compiled | not run
    message: str = ""
    mode: str = EAGER
    #: a failed hypothesis test's ``@reproduce_failure(...)`` decorator, which replays the failing example
    #: (``--replay REPORT``); None for every other test
    reproduce: str | None = None


def _outcome_of(records: list[TestRecord]) -> tuple[str, str, str]:
    """``(outcome, reason, message)`` of one clause on one device, from the tests behind it."""
    failing = [r for r in records if r.outcome in ("failed", "error")]
    if failing:
        return "failed", "", failing[0].message
    known = [r for r in records if r.outcome == "known failure"]
    if known:
        return "known failure", known[0].message, ""
    if any(r.outcome == "passed" for r in records):
        return "passed", "", ""
    not_compiled = [r for r in records if r.outcome == "not compiled"]
    if not_compiled:
        return "not compiled", not_compiled[0].message, ""
    skipped = [r for r in records if r.outcome == "skipped"]
    if records and len(skipped) == len(records):
        return "skipped", skipped[0].message, ""
    return "untested", "", ""


def clause_outcomes(
    clauses: Mapping[str, ClauseLike],
    records: Iterable[TestRecord],
    devices: Iterable[str],
    *,
    torch_version: str,
    device_status: Mapping[str, DeviceAvailability],
    modes: Iterable[str] = (EAGER,),
) -> dict[str, dict[str, dict]]:
    """``{clause id: {target: outcome record}}`` for every clause, over the run's devices and modes.

    A target is a device in a mode (:func:`report_io.target_name`: ``cpu`` when
    eager, ``cpu@compile:aot_eager`` when compiled).  ``torch_version`` is the
    installed torch's (a clause's version range is checked against it);
    ``device_status`` says, for each of ``devices``, whether it was available
    (the plugin probes the devices: this module knows no torch).

    A target's record is built from the clause's tests on that device in that
    mode plus its device-independent tests in that mode; a target with neither
    has no record. On an unavailable device the clause is ``skipped`` with the
    device's reason, even when device-independent tests of it passed: nothing
    ran there.
    """
    by_clause: dict[str, dict[tuple, list[TestRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        for cid in record.clauses:
            by_clause[cid][(record.device, record.mode)].append(record)
    modes = list(modes)
    devices = list(devices)
    result: dict[str, dict[str, dict]] = {}
    for cid, clause in clauses.items():
        tests_by_target = by_clause.get(cid, {})
        per_target: dict[str, dict] = {}
        for mode in modes:
            shared = tests_by_target.get((DEVICE_INDEPENDENT, mode), [])
            for device_name in devices:
                behind = tests_by_target.get((device_name, mode), []) + shared
                if not behind:
                    continue
                status = device_status[device_name]
                not_expressible = clause.not_applicable_in(mode) if hasattr(clause, "not_applicable_in") else None
                if not clause.applies_to(torch_version):
                    outcome, reason, message = (
                        "not applicable",
                        f"{cid} applies to torch {clause.versions}, this is torch {torch_version}",
                        "",
                    )
                elif not_expressible:
                    outcome, reason, message = "not applicable", not_expressible, ""
                elif not status.available:
                    outcome, reason, message = "skipped", status.reason, ""
                else:
                    outcome, reason, message = _outcome_of(behind)
                entry = {
                    "outcome": outcome,
                    "reason": reason,
                    "message": message,
                    "tests": [r.nodeid for r in behind],
                }
                if mode != EAGER:
                    entry.update(device=device_name, mode=mode)
                per_target[target_name(device_name, mode)] = entry
        result[cid] = per_target
    return result


def tally(outcomes: Mapping[str, Mapping[str, dict]], device: str) -> dict[str, int]:
    """``{outcome: number of clauses}`` on ``device``, worst outcome first."""
    return count_outcomes([per_device[device] for per_device in outcomes.values() if device in per_device])


def build_report(
    clauses: Mapping[str, ClauseLike],
    records: Iterable[TestRecord],
    *,
    devices: list[str],
    device_status: Mapping[str, DeviceAvailability],
    environment: dict,
    exit_status: int = 0,
    expectations: dict | None = None,
    modes: list[str] | None = None,
) -> dict:
    """The report of a run (``docs/report-schema.md``).

    The caller finds out what needs torch and hands it in as data: whether each
    of ``devices`` is available (``device_status``) and what ran (``environment``,
    the report's ``environment`` object, its ``torch`` the installed version; see
    :func:`conformance.plugin.environment.collect_environment`).
    """
    records = list(records)
    torch_version = environment["torch"]
    modes = list(modes or [EAGER])
    outcomes = clause_outcomes(
        clauses, records, devices, torch_version=torch_version, device_status=device_status, modes=modes
    )
    targets = [target_name(device_name, mode) for mode in modes for device_name in devices]
    violated = any(r["outcome"] == "failed" for per_device in outcomes.values() for r in per_device.values())
    return {
        "schema": REPORT_SCHEMA,
        "schema_version": REPORT_SCHEMA_VERSION,
        "suite_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "exit_status": int(exit_status),
        "verdict": "violated" if violated else "conforms",
        "environment": environment,
        "devices": targets,
        "modes": modes,
        "totals": {target: tally(outcomes, target) for target in targets},
        "clauses": [
            {
                "id": cid,
                "title": clause.title,
                "area": clause.path.stem,
                "area_title": clause.area,
                "versions": str(clause.versions) or "any",
                "applies": clause.applies_to(torch_version),
                "basis": clause.basis,
                "basis_note": clause.basis_note,
                "devices": outcomes[cid],
            }
            for cid, clause in clauses.items()
        ],
        "expectations": expectations or {"path": None, "applied": [], "stale": []},
        "tests": [asdict(record) for record in records],
    }


def write_json_atomically(path: Path, payload: dict) -> None:
    """The report as JSON, written atomically (see :func:`report_io.write_text_atomically`)."""
    write_text_atomically(path, json.dumps(payload, indent=1) + "\n")
