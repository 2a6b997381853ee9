"""Reading conformance reports (``docs/report-schema.md``, schema versions 1 and 2) back in.

:func:`load_report` reads and validates one report -- against the JSON Schema
shipped beside this module (``report.schema.json``, checked with the
``jsonschema`` library), then what a schema cannot say; every problem with the
input becomes a :class:`ReportError` whose message names the file, where in the
report the problem is and what was expected, so the command-line tools can
print it as one line.  The
accessors below give the rest of the tools a view of a report keyed by
``(clause id, target)``: a target is a device in an execution mode, named by the
device alone when eager (``cpu``) and ``device@mode`` when compiled
(``cpu@compile:aot_eager``, :func:`target_name`).  A schema-1 report (eager runs
only) reads as a schema-2 report whose only mode is ``eager``.

This module deliberately imports neither torch nor pytest: reading a report
must work (and be fast) on a machine that only holds the JSON files.
"""

from __future__ import annotations

import functools
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
    "SCHEMA_FILE",
    "json_location",
    "load_schema",
    "schema_errors",
    "schema_problem",
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

#: the JSON Schema of the report (draft 2020-12, schema versions 1 and 2), shipped with the package
SCHEMA_FILE = Path(__file__).resolve().parent / "report.schema.json"

#: JSON Schema type names as the messages say them
JSON_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "object": "an object",
    "array": "a list",
    "boolean": "a boolean",
    "null": "null",
}
#: objects of the report keyed by names (targets, devices, outcomes) rather than by fields: a key inside
#: one is shown as ``devices['cpu']`` in a message, a field as ``'reason'``
NAMED_MAPS = ("devices", "totals", "device_status")


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
    """Raise :class:`ReportError` for the first problem that stops the tools from reading ``report``.

    In three steps: ``schema`` and ``schema_version`` first (a file that is no
    conformance report, or one of a schema version this reader does not know,
    is named as such rather than by its first odd field); then the layout,
    against the JSON Schema :data:`SCHEMA_FILE` with the ``jsonschema`` library
    (:func:`schema_problem`); last, what a schema cannot express: each clause
    appears once, and every target's mode is one of the report's ``modes``.
    """
    if not isinstance(report, dict):
        raise ReportError(f"{name}: the top level is {_json_type(report)}; expected a JSON object (a report)")
    _check_schema(report, name)
    problem = schema_problem(report)
    if problem is not None:
        raise ReportError(f"{name}: {problem}")
    if report["schema_version"] >= 2:
        _check_target_modes(report, name)
    _check_unique_clauses(report, name)


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


def _check_target_modes(report: dict, name: str) -> None:
    """Schema 2: every target's mode is one of the run's ``modes``."""
    modes = report["modes"]
    for target in report["devices"]:
        if mode_of(target) not in modes:
            raise ReportError(
                f"{name}: target {target!r} in 'devices' is in mode {mode_of(target)!r}, which 'modes' "
                f"({_listing(modes) or 'none'}) does not list; expected every target's mode in 'modes'"
            )


def _check_unique_clauses(report: dict, name: str) -> None:
    seen: set[str] = set()
    for clause in report["clauses"]:
        if clause["id"] in seen:
            raise ReportError(f"{name}: clause {clause['id']!r} appears twice in 'clauses'; expected one entry each")
        seen.add(clause["id"])


# ---------------------------------------------------------------------------- the JSON Schema


def load_schema() -> dict:
    """The report's JSON Schema (:data:`SCHEMA_FILE`, draft 2020-12), parsed: a fresh copy for the caller."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=None)
def _validator() -> Any:
    """The schema's validator, built once per process.

    ``jsonschema`` is imported here, on the first report read, so that the
    plugin (which writes reports and reads none) never pays for it. The
    schema's ``$ref``s are inlined first: the schema has no recursion, and
    resolving a reference for every test of a 2600-test report took about
    40% of the validation time.
    """
    import jsonschema

    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(_inline_refs(schema, schema.get("$defs", {})))


def _inline_refs(node: Any, definitions: Mapping[str, Any]) -> Any:
    """``node`` with every ``{"$ref": "#/$defs/NAME", ...}`` replaced by the definition (its siblings kept
    beside it in an ``allOf``) and the ``$defs`` dropped."""
    if isinstance(node, list):
        return [_inline_refs(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _inline_refs(definitions[node["$ref"].rpartition("/")[2]], definitions)
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        return {"allOf": [target, _inline_refs(siblings, definitions)]} if siblings else target
    return {key: _inline_refs(value, definitions) for key, value in node.items() if key != "$defs"}


def schema_errors(report: Any) -> list:
    """Every violation of the JSON Schema in ``report``, as ``jsonschema.ValidationError`` objects.

    A valid report is recognised fast: the schema is first checked on a
    *digest* of the report (:func:`_digest`), which validates exactly when the
    report does; only an invalid report is walked whole, to say where it fails.
    """
    validator = _validator()
    if validator.is_valid(_digest(report)):
        return []
    return list(validator.iter_errors(report))


#: fields that the schema checks by type alone (free text, node ids, clause ID lists): the digest puts an
#: empty value of the same type in their place (tests/test_report_schema.py checks that the schema still
#: constrains them by type alone): of a ``tests[]`` entry, of a clause's outcome record, of a clause
TYPE_ONLY_TEST_FIELDS = ("nodeid", "message", "reproduce", "device", "clauses")
TYPE_ONLY_RECORD_FIELDS = ("reason", "message", "tests")
TYPE_ONLY_CLAUSE_FIELDS = ("id", "title", "area", "area_title", "versions", "basis_note")


def _digest(report: Any) -> Any:
    """What :func:`schema_errors` validates first: ``report`` with the :data:`TYPE_ONLY_TEST_FIELDS` of each
    ``tests[]`` entry, the :data:`TYPE_ONLY_CLAUSE_FIELDS` of each clause and the :data:`TYPE_ONLY_RECORD_FIELDS`
    of its records replaced by an empty value of the same JSON type, and the entries of ``tests`` and ``clauses``
    that then look alike kept once.

    It validates exactly when ``report`` does: the schema looks at those fields' types only, and at nothing of
    the two lists but their entries (that clause IDs are unique is checked in code, on the report). The 2600
    tests and 126 clauses of a full compiled run digest into a few dozen entries, and validation takes a
    fraction of the time.
    """
    if not isinstance(report, dict):
        return report
    digest = dict(report)
    for key, fields in (("tests", TYPE_ONLY_TEST_FIELDS), ("clauses", TYPE_ONLY_CLAUSE_FIELDS)):
        if isinstance(report.get(key), list):
            distinct: dict[str, Any] = {}
            for entry in report[key]:
                entry = _emptied_fields(entry, fields)
                if key == "clauses" and isinstance(entry, dict) and isinstance(entry.get("devices"), dict):
                    entry["devices"] = {t: _emptied_fields(r, TYPE_ONLY_RECORD_FIELDS) for t, r in entry["devices"].items()}
                distinct.setdefault(json.dumps(entry, sort_keys=True), entry)
            digest[key] = list(distinct.values())
    return digest


def _emptied_fields(entry: Any, fields: Sequence[str]) -> Any:
    if not isinstance(entry, dict):
        return entry
    return {key: _emptied(value) if key in fields else value for key, value in entry.items()}


def _emptied(value: Any) -> Any:
    """An empty value of ``value``'s JSON type (a list of strings stays a list of strings: the empty one)."""
    if isinstance(value, str):
        return ""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return []
    return value


def schema_problem(report: Any) -> str | None:
    """The first violation of the JSON Schema in ``report`` as one line (where, what, what was expected),
    None when there is none.

    "First" is the shallowest: a missing top-level key before a bad record
    deep in a clause, and within a depth, in the schema's order. The keys an
    object misses are named together.
    """
    errors = sorted(schema_errors(report), key=lambda error: len(error.absolute_path))
    if not errors:
        return None
    first = errors[0]
    where = json_location(report, first.absolute_path)
    if first.validator == "required":
        missing = list(
            dict.fromkeys(
                key
                for error in errors
                if error.validator == "required" and list(error.absolute_path) == list(first.absolute_path)
                for key in error.validator_value
                if key not in error.instance
            )
        )
        keys = f"missing required key{'s' if len(missing) > 1 else ''} {_listing(missing)}"
        if not where:
            return f"{keys} (report schema version {report['schema_version']}, see docs/report-schema.md)"
        meaning = first.schema.get("properties", {}).get(missing[0], {}).get("description")
        return f"{where}: {keys}" + (f" ({meaning})" if len(missing) == 1 and meaning else "")
    return _describe(first, where, report)


def _describe(error: Any, where: str, report: Mapping) -> str:
    value, rule, keyword = error.instance, error.validator_value, error.validator
    if "propertyNames" in error.absolute_schema_path:  # the key of an object, not a value
        where = f"{where}: key"
    if keyword == "type":
        wanted = [rule] if isinstance(rule, str) else list(rule)
        return f"{where} is {_json_type(value)}; expected {' or '.join(JSON_TYPE_NAMES[t] for t in wanted)}"
    if keyword == "enum":
        expected = f"expected one of {_listing(rule)}"
        version = report.get("schema_version")
        if value in SCHEMA_2_OUTCOMES and version is not None and version < 2:
            return (
                f"{where} is {_shown(value)}, new in schema version 2, and the report says "
                f"'schema_version': {version}; {expected}"
            )
        return f"{where} is {_shown(value)}; {expected}"
    if keyword == "const":
        return f"{where} is {_shown(value)}; expected {_shown(rule)}"
    if keyword in ("minItems", "maxItems"):
        bound = "at least" if keyword == "minItems" else "at most"
        return f"{where} has {len(value)} entr{'y' if len(value) == 1 else 'ies'}; expected {bound} {rule}"
    if keyword == "pattern":
        return f"{where} is {_shown(value)}; expected {error.schema.get('description') or f'text matching {rule}'}"
    return f"{where}: {error.message}"


def json_location(report: Any, path: Sequence[str | int]) -> str:
    """Where ``path`` (keys and indices from the top) points in ``report``, as the messages say it:
    ``'verdict'``, ``'environment.torch'``, ``devices[1]``, ``clauses[0] (ACCUM-1): devices['cpu']: 'outcome'``,
    ``tests[3] (t.py::test[cpu]): 'mode'``; ``""`` for the top level.

    A list entry is shown with its index (and what names it: a clause's ``id``, a test's ``nodeid``, an
    expectation's ``clause``); an entry of an object keyed by names (:data:`NAMED_MAPS`: targets, devices)
    with its name; a field with its key, quoted.
    """
    parts: list[str] = []
    prefix: list[str] = []  # keys of plain objects on the way, joined by dots
    node = report
    path = list(path)
    index = 0
    while index < len(path):
        key = path[index]
        child = node[key] if isinstance(node, (dict, list)) else None
        following = path[index + 1] if index + 1 < len(path) else None
        if following is not None and (isinstance(following, int) or key in NAMED_MAPS):
            label = ".".join([*prefix, str(key)]) + (f"[{following}]" if isinstance(following, int) else f"[{following!r}]")
            entry = child[following] if isinstance(child, (dict, list)) else None
            naming = _NAMING_FIELDS.get(str(key))
            if naming and isinstance(entry, dict) and isinstance(entry.get(naming), str):
                label += f" ({entry[naming]})"
            parts.append(label)
            prefix, node, index = [], entry, index + 2
        elif following is None:
            parts.append(repr(".".join([*prefix, str(key)])) if isinstance(key, str) else f"[{key}]")
            index += 1
        else:
            prefix.append(str(key))
            node, index = child, index + 1
    return ": ".join(parts)


#: the field that names an entry of a list, shown beside its index in messages
_NAMING_FIELDS = {"clauses": "id", "tests": "nodeid", "applied": "clause", "stale": "clause"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "a number"


def _shown(value: Any) -> str:
    """A JSON value in a message: strings quoted as Python does (``'maybe'``), short; others as JSON."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, (dict, list)):
        return _json_type(value)
    return json.dumps(value)


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
