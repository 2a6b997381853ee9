"""Clause-by-clause outcomes of a run, and the JSON report built from them.

A clause's outcome on a device is

* ``failed``  -- at least one of its tests failed or errored there;
* ``known failure`` -- none failed, but one is an expected failure (``xfail``)
  whose reason names a known torch defect: the clause does *not* fully hold;
* ``passed``  -- at least one passed and none failed or was an expected failure;
* ``skipped`` -- all its tests were skipped (e.g. the device is absent);
* ``not applicable`` -- its version range excludes the installed torch;
* ``untested`` -- none of its tests ran (deselected, interrupted).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Mapping

import hypothesis
import torch

from . import __version__
from .specs import Clause

__all__ = [
    "DEVICE_INDEPENDENT",
    "REPORT_SCHEMA_VERSION",
    "TestRecord",
    "build_report",
    "clause_outcomes",
    "verdict_on_device",
    "worst_outcome",
    "write_json_atomically",
]

REPORT_SCHEMA_VERSION = 1
#: the device key of tests without a ``device`` argument (pure Python-level behaviour)
DEVICE_INDEPENDENT = "any"
OUTCOME_ORDER = ("failed", "known failure", "skipped", "untested", "not applicable", "passed")  # worst first


@dataclass
class TestRecord:
    nodeid: str
    clauses: tuple[str, ...]
    device: str | None
    outcome: str = "not run"  # passed | failed | error | skipped | xfailed | not run
    message: str = ""


def clause_outcomes(
    clauses: Mapping[str, Clause], records: Iterable[TestRecord], torch_version: str = torch.__version__
) -> dict[str, dict[str, dict]]:
    """``{clause id: {device: {"outcome", "tests", "message"}}}``; devices with no test are absent."""
    by_clause: dict[str, dict[str, list[TestRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        for cid in record.clauses:
            by_clause[cid][record.device or DEVICE_INDEPENDENT].append(record)
    result: dict[str, dict[str, dict]] = {}
    for cid, clause in clauses.items():
        per_device = {}
        for device_name, device_records in sorted(by_clause.get(cid, {}).items()):
            outcomes = [r.outcome for r in device_records]
            failing = [r for r in device_records if r.outcome in ("failed", "error")]
            known = [r for r in device_records if r.outcome == "xfailed"]
            skipped = [r for r in device_records if r.outcome == "skipped"]
            if not clause.applies_to(torch_version):
                outcome = "not applicable"
            elif failing:
                outcome = "failed"
            elif known:
                outcome = "known failure"
            elif "passed" in outcomes:
                outcome = "passed"
            elif outcomes and len(skipped) == len(outcomes):
                outcome = "skipped"
            else:
                outcome = "untested"
            per_device[device_name] = {
                "outcome": outcome,
                "tests": [r.nodeid for r in device_records],
                "message": next((r.message for r in failing + known + skipped), ""),
            }
        result[cid] = per_device
    return result


def worst_outcome(outcomes: Iterable[str]) -> str | None:
    present = set(outcomes)
    return next((o for o in OUTCOME_ORDER if o in present), None)


def verdict_on_device(per_device: Mapping[str, dict], device: str) -> str | None:
    """A clause's outcome on ``device``: its tests there plus its device-independent tests."""
    outcomes = [per_device[key]["outcome"] for key in (device, DEVICE_INDEPENDENT) if key in per_device]
    for decisive in ("failed", "known failure"):
        if decisive in outcomes:
            return decisive
    if "passed" in outcomes:
        return "passed"
    return worst_outcome(outcomes)


def build_report(
    clauses: Mapping[str, Clause], records: Iterable[TestRecord], *, devices: list[str], profile: str
) -> dict:
    records = list(records)
    outcomes = clause_outcomes(clauses, records)
    return {
        "schema": "autograd-conformance-report",
        "schema_version": REPORT_SCHEMA_VERSION,
        "suite_version": __version__,
        "environment": {
            "torch": torch.__version__,
            "torch_cuda": torch.version.cuda,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "hypothesis": hypothesis.__version__,
            "hypothesis_profile": profile,
            "devices": devices,
        },
        "clauses": [
            {
                "id": cid,
                "title": clause.title,
                "area": clause.area,
                "versions": str(clause.versions),
                "applies": clause.applies_to(torch.__version__),
                "devices": outcomes[cid],
            }
            for cid, clause in clauses.items()
        ],
        "tests": [asdict(record) for record in records],
    }


def write_json_atomically(path: Path, payload: dict) -> None:
    """Write to a temporary file beside ``path`` and rename: readers never see half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
