"""Reading conformance reports (``docs/report-schema.md``, schema versions 1 and 2) back in.

:func:`load_report` reads and validates one report; every problem with the
input becomes a :class:`ReportError` whose message names the file and says what
was expected, so the command-line tools can print it as one line.  The
accessors below give the rest of the tools a view of a report keyed by
``(clause id, target)``: a target is a device in an execution mode, named by the
device alone when eager (``cpu``) and ``device@mode`` when compiled
(``cpu@compile:aot_eager``, :func:`target_name`).  A schema-1 report (eager runs
only) reads as a schema-2 report whose only mode is ``eager``.

This module deliberately imports neither torch nor pytest: reading a report
must work (and be fast) on a machine that only holds the JSON files.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

__all__ = [
    "BASES",
    "OnTarget",
    "BASIS_MEANINGS",
    "OUTCOMES",
    "REPORT_SCHEMA",
    "REPORT_SCHEMA_VERSION",
    "ReportError",
    "clause_index",
    "clause_sort_key",
    "basis_of",
    "count_outcomes",
    "counts_phrase",
    "detail_of",
    "device_columns",
    "device_of",
    "mode_of",
    "first_test",
    "fully_skipped_devices",
    "iter_outcomes",
    "load_report",
    "outcome_table",
    "records_on",
    "split_target",
    "target_name",
    "report_devices",
    "report_modes",
    "targets_by_device",
    "torch_sort_key",
    "torch_version",
    "validate_report",
    "write_text_atomically",
]

#: the value of the report's ``schema`` field
REPORT_SCHEMA = "autograd-conformance-report"
#: the ``schema_version`` this suite writes; :data:`READABLE_SCHEMA_VERSIONS` are those it reads
REPORT_SCHEMA_VERSION = 2
#: 1: eager runs only (docs/reports/ before compiled modes); 2: adds compiled modes (targets ``device@mode``)
#: and the outcome ``not compiled``
READABLE_SCHEMA_VERSIONS = (1, 2)
#: the outcomes of a clause on a device, worst first (as in the schema document). This is also the
#: one order in which counts are listed: the plugin's end-of-run line, ``summary``, ``matrix`` totals.
OUTCOMES = ("failed", "known failure", "not compiled", "skipped", "untested", "not applicable", "passed")
#: the mode of a run without ``--mode``: torch runs the user program op by op
EAGER = "eager"
#: joins a device and a compiled mode into a run target, ``cpu@compile:aot_eager`` (an eager target is the device)
TARGET_SEPARATOR = "@"
#: what a clause rests on (the ``Basis`` field of the spec, ``basis`` in the report; see specs/README.md)
BASES = ("documented", "observed", "deprecated")
#: each basis in a few words, for the tools' notes ("observed: no docs sentence states it")
BASIS_MEANINGS = {
    "documented": "a docs sentence states it",
    "observed": "no docs sentence states it",
    "deprecated": "the docs say this API is deprecated or will change",
}
VERDICTS = ("conforms", "violated")

#: outcomes that schema version 2 added: a schema-1 report holding one is refused
SCHEMA_2_OUTCOMES = ("not compiled",)

#: top-level fields the tools read, with the JSON type each must have
REQUIRED_TOP_LEVEL = {
    "suite_version": str,
    "verdict": str,
    "environment": dict,
    "devices": list,
    "clauses": list,
}
REQUIRED_CLAUSE_FIELDS = {"id": str, "title": str, "area": str, "devices": dict}
#: clause fields added within schema version 1: absent from older reports (docs/reports/), checked when present
OPTIONAL_CLAUSE_FIELDS = {"basis": str, "basis_note": str}
OPTIONAL_RECORD_FIELDS = {"reason": str, "message": str, "tests": list}
#: fields of a compiled target's record (schema version 2): its physical device and its mode
COMPILED_RECORD_FIELDS = {"device": str, "mode": str}

JSON_TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "a list", bool: "a boolean"}


class ReportError(ValueError):
    """The input is not a report these tools can read (or reports that cannot be compared)."""


# --------------------------------------------------------------------------------------------------
# loading and validation


def load_report(path: str | Path) -> dict:
    """Read the report at ``path``; raise :class:`ReportError` unless it is a valid schema-1 or schema-2 report."""
    name = str(path)
    text = _read_text(Path(path), name)
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{name}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            f"expected a conformance report written by pytest --conformance-report"
        ) from None
    validate_report(report, name)
    return report


def _read_text(path: Path, name: str) -> str:
    try:
        if path.suffix == ".gz":  # reports archived compressed (docs/reports/*.json.gz)
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                return handle.read()
        return path.read_text(encoding="utf-8")
    except (gzip.BadGzipFile, EOFError):
        raise ReportError(f"{name}: not a gzip file, or truncated; expected a gzip-compressed report") from None
    except FileNotFoundError:
        raise ReportError(f"{name}: no such file; expected a conformance report (JSON)") from None
    except IsADirectoryError:
        raise ReportError(f"{name}: is a directory; expected a conformance report file (JSON)") from None
    except UnicodeDecodeError:
        raise ReportError(f"{name}: not UTF-8 text; expected a conformance report (JSON)") from None
    except OSError as exc:
        raise ReportError(f"{name}: cannot be read ({exc.strerror or exc})") from None


def validate_report(report: Any, name: str) -> None:
    """Raise :class:`ReportError` for the first problem that stops the tools from reading ``report``."""
    if not isinstance(report, dict):
        raise ReportError(f"{name}: the top level is {_json_type(report)}; expected a JSON object (a report)")
    _check_schema(report, name)
    missing = [key for key in REQUIRED_TOP_LEVEL if key not in report]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise ReportError(
            f"{name}: missing required key{plural} {', '.join(repr(k) for k in missing)} "
            f"(report schema version {report['schema_version']}, see docs/report-schema.md)"
        )
    for key, expected_type in REQUIRED_TOP_LEVEL.items():
        _check_type(report[key], expected_type, f"{name}: {key!r}")
    if report["verdict"] not in VERDICTS:
        raise ReportError(f"{name}: 'verdict' is {report['verdict']!r}; expected one of {_listing(VERDICTS)}")
    _check_environment(report["environment"], name)
    _check_devices(report["devices"], name)
    version = report["schema_version"]
    if version >= 2:
        _check_modes(report, name)
    seen: set[str] = set()
    for index, clause in enumerate(report["clauses"]):
        _check_clause(clause, f"{name}: clauses[{index}]", version)
        if clause["id"] in seen:
            raise ReportError(f"{name}: clause {clause['id']!r} appears twice in 'clauses'; expected one entry each")
        seen.add(clause["id"])


def _check_schema(report: dict, name: str) -> None:
    schema = report.get("schema")
    if schema != REPORT_SCHEMA:
        found = "no 'schema' key" if "schema" not in report else f"'schema' is {schema!r}"
        raise ReportError(f"{name}: {found}; expected 'schema': {REPORT_SCHEMA!r} (not a conformance report?)")
    version = report.get("schema_version")
    if "schema_version" not in report:
        raise ReportError(
            f"{name}: no 'schema_version' key; expected 'schema_version': {_versions_phrase(' or ')}"
        )
    if type(version) is not int or version not in READABLE_SCHEMA_VERSIONS:
        raise ReportError(
            f"{name}: 'schema_version' is {version!r}; this reader understands schema versions "
            f"{_versions_phrase(' and ')} (a newer suite may have written it: use that suite's tools)"
        )


def _versions_phrase(conjunction: str) -> str:
    """``"1 and 2"`` / ``"1 or 2"``: the readable schema versions."""
    *head, last = map(str, READABLE_SCHEMA_VERSIONS)
    return f"{', '.join(head)}{conjunction}{last}" if head else last


def _check_modes(report: dict, name: str) -> None:
    """Schema 2: ``modes`` lists the run's modes, and every target's mode is one of them."""
    if "modes" not in report:
        raise ReportError(
            f"{name}: missing required key 'modes' (report schema version 2, see docs/report-schema.md)"
        )
    modes = report["modes"]
    _check_type(modes, list, f"{name}: 'modes'")
    for mode in modes:
        _check_type(mode, str, f"{name}: an entry of 'modes'")
    for target in report["devices"]:
        if mode_of(target) not in modes:
            raise ReportError(
                f"{name}: target {target!r} in 'devices' is in mode {mode_of(target)!r}, which 'modes' "
                f"({_listing(modes) or 'none'}) does not list; expected every target's mode in 'modes'"
            )


def _check_environment(environment: dict, name: str) -> None:
    if "torch" not in environment:
        raise ReportError(f"{name}: 'environment' has no 'torch' key; expected the torch version that ran")
    _check_type(environment["torch"], str, f"{name}: 'environment.torch'")


def _check_devices(devices: list, name: str) -> None:
    for device in devices:
        _check_type(device, str, f"{name}: an entry of 'devices'")


def _check_clause(clause: Any, where: str, version: int = REPORT_SCHEMA_VERSION) -> None:
    _check_type(clause, dict, where)
    missing = [key for key in REQUIRED_CLAUSE_FIELDS if key not in clause]
    if missing:
        ident = f" ({clause['id']})" if isinstance(clause.get("id"), str) else ""
        raise ReportError(f"{where}{ident}: missing key{'s' if len(missing) > 1 else ''} {_listing(missing)}")
    where = f"{where} ({clause['id']})" if isinstance(clause["id"], str) else where
    for key, expected_type in REQUIRED_CLAUSE_FIELDS.items():
        _check_type(clause[key], expected_type, f"{where}: {key!r}")
    for key, expected_type in OPTIONAL_CLAUSE_FIELDS.items():
        if key in clause:
            _check_type(clause[key], expected_type, f"{where}: {key!r}")
    if "basis" in clause and clause["basis"] not in BASES:
        raise ReportError(f"{where}: basis {clause['basis']!r}; expected one of {_listing(BASES)}")
    for device, record in clause["devices"].items():
        _check_record(record, f"{where}: devices[{device!r}]", version)


def _check_record(record: Any, where: str, version: int = REPORT_SCHEMA_VERSION) -> None:
    _check_type(record, dict, where)
    outcomes = OUTCOMES if version >= 2 else tuple(o for o in OUTCOMES if o not in SCHEMA_2_OUTCOMES)
    if "outcome" not in record:
        raise ReportError(f"{where}: no 'outcome' key; expected one of {_listing(outcomes)}")
    if record["outcome"] in SCHEMA_2_OUTCOMES and version < 2:
        raise ReportError(
            f"{where}: outcome {record['outcome']!r} is new in schema version 2, and the report says "
            f"'schema_version': {version}; expected one of {_listing(outcomes)}"
        )
    if record["outcome"] not in outcomes:
        raise ReportError(f"{where}: outcome {record['outcome']!r}; expected one of {_listing(outcomes)}")
    for key, expected_type in OPTIONAL_RECORD_FIELDS.items():
        if key in record:
            _check_type(record[key], expected_type, f"{where}: {key!r}")
    for key, expected_type in COMPILED_RECORD_FIELDS.items():
        if key in record:
            _check_type(record[key], expected_type, f"{where}: {key!r}")


def _check_type(value: Any, expected_type: type, what: str) -> None:
    # bool is an int subclass in Python, but not an integer in JSON.
    if not isinstance(value, expected_type) or (expected_type is int and isinstance(value, bool)):
        raise ReportError(f"{what} is {_json_type(value)}; expected {JSON_TYPE_NAMES[expected_type]}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    for python_type, description in JSON_TYPE_NAMES.items():
        if isinstance(value, python_type):
            return description
    return "a number"


def _listing(values: Sequence[str]) -> str:
    return ", ".join(repr(v) for v in values)


# --------------------------------------------------------------------------------------------------
# accessors


def torch_version(report: Mapping) -> str:
    """The ``torch.__version__`` that ran, e.g. ``"2.13.0+cpu"``."""
    return report["environment"]["torch"]


def torch_sort_key(version: str) -> tuple:
    """Sort key ordering torch versions as versions (2.9.1 < 2.10.0); unparsable ones last, by text."""
    try:
        return (0, Version(version), version)
    except InvalidVersion:
        return (1, version, version)


def target_name(device: str, mode: str = EAGER) -> str:
    """The column of ``device`` in ``mode``: the device itself when eager, else ``device@mode``."""
    return device if mode == EAGER else f"{device}{TARGET_SEPARATOR}{mode}"


def split_target(target: str) -> tuple[str, str]:
    """``(device, mode)`` of a run target: ``"cpu@compile:aot_eager"`` -> ``("cpu", "compile:aot_eager")``."""
    device, _, mode = target.partition(TARGET_SEPARATOR)
    return device, mode or EAGER


def device_of(target: str) -> str:
    """The physical device of a target: ``"cpu@compile:aot_eager"`` -> ``"cpu"``."""
    return split_target(target)[0]


def mode_of(target: str) -> str:
    """The mode of a target: ``"cpu@compile:aot_eager"`` -> ``"compile:aot_eager"``, ``"cpu"`` -> ``"eager"``."""
    return split_target(target)[1]


class OnTarget:
    """Mixin for a record of one report column: its ``target`` (``cpu``, ``cpu@compile:aot_eager``) split into
    ``device`` and ``mode``."""

    target: str

    @property
    def device(self) -> str:
        """The physical device: ``cpu`` for ``cpu@compile:aot_eager``."""
        return device_of(self.target)

    @property
    def mode(self) -> str:
        """``eager`` or the compiled mode, ``compile:aot_eager``."""
        return mode_of(self.target)


def report_devices(report: Mapping) -> list[str]:
    """The targets the run was asked for (the report's ``devices``), in order: in a schema-1 report, and
    in an eager-only run, these are the devices."""
    return list(report["devices"])


def report_modes(report: Mapping) -> list[str]:
    """The run's modes: the report's ``modes`` (schema 2), else those of its targets (``["eager"]`` for
    schema 1), in order."""
    modes = report.get("modes")
    if isinstance(modes, list) and modes:
        return list(modes)
    return list(dict.fromkeys(mode_of(target) for target in device_columns(report))) or [EAGER]


def targets_by_device(targets: Sequence[str], modes: Sequence[str] = ()) -> list[str]:
    """``targets`` reordered so that each device's targets sit side by side: devices in order of first
    appearance, within a device its modes in the order of ``modes`` (then as seen), eager first.

    ``["cpu", "cuda", "cpu@compile:aot_eager"]`` -> ``["cpu", "cpu@compile:aot_eager", "cuda"]``; a list of
    eager targets keeps its order.
    """
    mode_order = list(dict.fromkeys([EAGER, *modes, *(mode_of(t) for t in targets)]))
    devices = list(dict.fromkeys(device_of(t) for t in targets))
    return sorted(targets, key=lambda t: (devices.index(device_of(t)), mode_order.index(mode_of(t))))


def device_columns(report: Mapping) -> list[str]:
    """The requested devices, then any device that has records without being requested, in order seen."""
    columns = report_devices(report)
    for clause in report["clauses"]:
        for device in clause["devices"]:
            if device not in columns:
                columns.append(device)
    return columns


def clause_index(report: Mapping) -> dict[str, dict]:
    """``{clause id: clause object}`` in the report's (spec) order."""
    return {clause["id"]: clause for clause in report["clauses"]}


def iter_outcomes(report: Mapping) -> Iterator[tuple[tuple[str, str], dict]]:
    """``((clause id, device), outcome record)`` for every record of the report, in spec order."""
    for clause in report["clauses"]:
        for device, record in clause["devices"].items():
            yield (clause["id"], device), record


def outcome_table(report: Mapping) -> dict[tuple[str, str], dict]:
    """``{(clause id, device): outcome record}``."""
    return dict(iter_outcomes(report))


def records_on(report: Mapping, device: str) -> list[dict]:
    """The outcome records of every clause that has one on ``device``."""
    return [clause["devices"][device] for clause in report["clauses"] if device in clause["devices"]]


def fully_skipped_devices(report: Mapping) -> dict[str, str]:
    """``{device: reason}`` for devices on which nothing ran: every record is ``skipped`` or ``not applicable``
    (and at least one is skipped), typically because the device is absent.

    The reason is the one ``environment.device_status`` gives for the device,
    else the first record's.
    """
    status = report["environment"].get("device_status")
    result = {}
    for device in device_columns(report):
        records = records_on(report, device)
        outcomes = {record["outcome"] for record in records}
        if "skipped" in outcomes and outcomes <= {"skipped", "not applicable"}:
            reason = ""
            physical = split_target(device)[0]
            if isinstance(status, dict) and isinstance(status.get(physical), dict):
                reason = str(status[physical].get("reason") or "")
            result[device] = reason or records[0].get("reason", "")
    return result


def basis_of(clause: Mapping | None) -> str | None:
    """The clause's basis (``"documented"``, ``"observed"``, ``"deprecated"``); None in reports written
    before clauses carried one."""
    return clause.get("basis") if clause else None


def counts_phrase(counts: Mapping[str, int]) -> str:
    """``"1 known failure, 2 skipped, 3 not applicable, 112 passed"``: in :data:`OUTCOMES` order
    (failed first), outcomes that occur only; ``"no clauses"`` when there are none."""
    parts = [f"{counts[outcome]} {outcome}" for outcome in OUTCOMES if counts.get(outcome)]
    return ", ".join(parts) or "no clauses"


def count_outcomes(records: Sequence[Mapping]) -> dict[str, int]:
    """``{outcome: count}`` over ``records``, worst outcome first, outcomes that occur only."""
    counts = {outcome: 0 for outcome in OUTCOMES}
    for record in records:
        counts[record["outcome"]] += 1
    return {outcome: number for outcome, number in counts.items() if number}


def detail_of(record: Mapping | None) -> str:
    """What explains a record: its failure message, else its reason (first line), else ``""``."""
    if not record:
        return ""
    text = record.get("message") or record.get("reason") or ""
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


def first_test(record: Mapping) -> str:
    """The first pytest node id behind a record, or ``""``."""
    tests = record.get("tests") or []
    return str(tests[0]) if tests else ""


_ID_NUMBER = re.compile(r"^(.*?)(\d+)$")


def clause_sort_key(clause_id: str) -> tuple:
    """Order clause ids by prefix, then numeric suffix: ``ACCUM-2`` before ``ACCUM-10``."""
    match = _ID_NUMBER.match(clause_id)
    if match:
        return (match.group(1), int(match.group(2)), clause_id)
    return (clause_id, -1, clause_id)


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place:
    a reader never sees half a file, and an interrupted write leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
