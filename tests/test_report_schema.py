"""The report's JSON Schema (``conformance/reporting/report.schema.json``) and validation with ``jsonschema``.

The schema must be a valid draft 2020-12 schema, accept every report the suite
has written (the archived ``docs/reports/``, the fixtures), describe every
field ``docs/report-schema.md`` documents, and say where a bad report goes
wrong in one line.  The reader validates a *digest* of the report first (for
speed): the digest's soundness rests on properties of the schema that are
checked here, so that a change of the schema cannot silently break it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import jsonschema
import pytest

from conformance.reporting import report_io
from conformance.reporting.report_io import ReportError, load_report, load_schema, validate_report
from tests.report_fixtures import compiled_report, make_report

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DOC = REPO_ROOT / "docs" / "report-schema.md"
ARCHIVED = sorted((REPO_ROOT / "docs" / "reports").glob("*.json.gz"))
FIXTURES = Path(__file__).parent / "fixtures" / "reports"


def test_the_schema_is_a_valid_draft_2020_12_schema_shipped_in_the_package():
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert report_io.SCHEMA_FILE.parent == Path(report_io.__file__).resolve().parent  # inside the package


@pytest.mark.parametrize("path", ARCHIVED + [FIXTURES / n for n in ("old.json", "new.json", "compiled.json")], ids=str)
def test_every_report_the_suite_wrote_is_valid(path):
    load_report(path)  # raises ReportError otherwise
    report = load_report(path)
    assert report_io.schema_errors(report) == []


def test_the_schema_alone_accepts_the_reports_too():
    """Another tool using only the schema file (no digest, $refs resolved by jsonschema) agrees."""
    validator = jsonschema.Draft202012Validator(load_schema())
    for path in ARCHIVED[:3] + [FIXTURES / "compiled.json"]:
        report = load_report(path)
        assert list(validator.iter_errors(report)) == [], path
    assert not validator.is_valid(dict(make_report(), verdict="maybe"))


# ----------------------------------------------------------------------------- the schema and the prose


def documented_fields(section: str) -> list[str]:
    """The field names of the first table under ``section`` (a heading) of the schema document."""
    lines = SCHEMA_DOC.read_text(encoding="utf-8").split(section, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| field |"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return re.findall(r"^\| `(\w+)` \|", "\n".join(table), flags=re.MULTILINE)


def properties(*path: str) -> set[str]:
    """The properties the schema names at ``path`` (``$defs`` names, followed through ``allOf``)."""
    defs = load_schema()["$defs"]
    node = defs[path[0]]
    found = set(node.get("properties", {}))
    for sub in node.get("allOf", []):
        if "$ref" in sub:
            found |= set(defs[sub["$ref"].rpartition("/")[2]].get("properties", {}))
    return found


@pytest.mark.parametrize(
    ("section", "definitions"),
    [
        ("## Top level", ("report", "report_v2")),
        ("## `environment`", ("environment",)),
        ("## `clauses[]`", ("clause",)),
        ("An outcome record:", ("record",)),
        ("## `tests[]`", ("test",)),
        ("## `expectations`", ("expectations",)),
    ],
)
def test_the_schema_names_every_documented_field_and_no_other(section, definitions):
    documented = set(documented_fields(section))
    described = set().union(*(properties(name) for name in definitions))
    assert documented and documented == described


def test_the_schema_has_the_documented_outcomes_in_order():
    defs = load_schema()["$defs"]
    assert tuple(defs["outcome"]["enum"]) == report_io.OUTCOMES
    assert defs["outcome_v1"]["enum"] == [o for o in report_io.OUTCOMES if o not in report_io.SCHEMA_2_OUTCOMES]
    assert defs["clause"]["properties"]["basis"]["enum"] == list(report_io.BASES)


# ----------------------------------------------------------------------------- messages


def valid() -> dict:
    report = compiled_report({"ACCUM-1": {"eager": "passed", "compile:aot_eager": "passed"}})
    report["tests"] = [
        {"nodeid": "t.py::test_it[cpu-eager]", "clauses": ["ACCUM-1"], "device": "cpu", "outcome": "passed",
         "message": "", "mode": "eager", "reproduce": None},
    ]
    return report


def changed(change) -> dict:
    report = valid()
    change(report)
    return report


BAD = {
    "test outcome": (
        lambda r: r["tests"][0].update(outcome="xfailed"),
        "tests[0] (t.py::test_it[cpu-eager]): 'outcome' is 'xfailed'; expected one of 'passed', 'failed', 'error'",
    ),
    "test without mode in schema 2": (
        lambda r: r["tests"][0].pop("mode"),
        "tests[0] (t.py::test_it[cpu-eager]): missing required key 'mode'",
    ),
    "reproduce not a string": (
        lambda r: r["tests"][0].update(reproduce=3),
        "tests[0] (t.py::test_it[cpu-eager]): 'reproduce' is an integer; expected a string or null",
    ),
    "test clauses not strings": (
        lambda r: r["tests"][0].update(clauses=[1]),
        "tests[0] (t.py::test_it[cpu-eager]): clauses[0] is an integer; expected a string",
    ),
    "negative total": (
        lambda r: r["totals"]["cpu"].update(passed=-1),
        "totals['cpu']: 'passed': -1 is less than the minimum of 0",
    ),
    "unknown outcome in totals": (
        lambda r: r["totals"]["cpu"].update(xfailed=1),
        "totals['cpu']: key is 'xfailed'; expected one of 'failed', 'known failure', 'not compiled'",
    ),
    "device not a string": (lambda r: r["devices"].append(7), "devices[2] is an integer; expected a string"),
    "unknown mode": (lambda r: r["modes"].append("fast"), "modes[2] is 'fast'; expected eager, or compile:BACKEND"),
    "no modes": (lambda r: r.update(modes=[]), "'modes' has 0 entries; expected at least 1"),
    "torch a number": (lambda r: r["environment"].update(torch=2.13), "'environment.torch' is a number; expected a string"),
    "device status without available": (
        lambda r: r["environment"]["device_status"]["cpu"].pop("available"),
        "environment.device_status['cpu']: missing required key 'available'",
    ),
    "applied entry without matched": (
        lambda r: r["expectations"]["applied"].append({"clause": "ACCUM-1", "reason": "r"}),
        "expectations.applied[0] (ACCUM-1): missing required key 'matched'",
    ),
    "no tests": (lambda r: r.pop("tests"), "missing required key 'tests' (report schema version 2"),
    "exit status a boolean": (lambda r: r.update(exit_status=True), "'exit_status' is a boolean; expected an integer"),
}


@pytest.mark.parametrize("problem", list(BAD))
def test_a_schema_violation_is_one_line_naming_the_json_path_and_what_was_expected(problem):
    change, expected = BAD[problem]
    with pytest.raises(ReportError) as info:
        validate_report(changed(change), "r.json")
    message = str(info.value)
    assert message.startswith("r.json: ") and "\n" not in message
    assert expected in message


def test_the_shallowest_problem_is_reported_first():
    report = valid()
    report["tests"][0]["outcome"] = "xfailed"
    report["verdict"] = "maybe"
    with pytest.raises(ReportError, match=r"r.json: 'verdict' is 'maybe'"):
        validate_report(report, "r.json")


# ----------------------------------------------------------------------------- the digest


#: the JSON Schema keywords the schema may use; the digest's soundness was argued for these (see below)
KNOWN_KEYWORDS = {
    "$schema", "$id", "$defs", "$ref", "title", "description", "type", "required", "properties",
    "additionalProperties", "propertyNames", "items", "enum", "const", "allOf", "if", "then",
    "minimum", "minItems", "minLength", "pattern", "format",
}


def keywords(node) -> set[str]:
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            if key in ("properties", "$defs"):
                for sub in value.values():
                    found |= keywords(sub)
            elif key not in ("enum", "const", "required"):
                found |= keywords(value)
    elif isinstance(node, list):
        for item in node:
            found |= keywords(item)
    return found


def applicable(node: dict, path: list[str]) -> list[dict]:
    """Every subschema of the (inlined) schema that applies at ``path``: property names, ``[]`` for a list's
    entries, ``{}`` for the values of an object keyed by names."""
    found = []
    for sub in node.get("allOf", []):
        found += applicable(sub, path)
    if "then" in node:
        found += applicable(node["then"], path)
    if not path:
        return found + [node]
    head, rest = path[0], path[1:]
    if head == "[]" and "items" in node:
        found += applicable(node["items"], rest)
    elif head == "{}" and isinstance(node.get("additionalProperties"), dict):
        found += applicable(node["additionalProperties"], rest)
    elif head in node.get("properties", {}):
        found += applicable(node["properties"][head], rest)
    return found


def type_only(schema: dict) -> bool:
    if not set(schema) <= {"type", "description", "items"}:
        return False
    return "items" not in schema or type_only(schema["items"])


def test_the_digest_leaves_out_only_what_the_schema_checks_by_type_alone():
    """The reader validates a digest first (``report_io._digest``): the type-only fields of tests, clauses and
    their records emptied, equal entries of ``tests`` and ``clauses`` kept once. That is sound while (1) every
    subschema applying to those fields constrains their type only, and (2) nothing constrains the two lists as
    lists (no minItems, uniqueItems, contains): checked here on the schema as the reader compiles it."""
    assert keywords(load_schema()) <= KNOWN_KEYWORDS, "a new keyword: re-check report_io._digest's soundness"
    schema = report_io._inline_refs(load_schema(), load_schema()["$defs"])
    for where, fields in (
        (["tests", "[]"], report_io.TYPE_ONLY_TEST_FIELDS),
        (["clauses", "[]"], report_io.TYPE_ONLY_CLAUSE_FIELDS),
        (["clauses", "[]", "devices", "{}"], report_io.TYPE_ONLY_RECORD_FIELDS),
    ):
        for field in fields:
            subschemas = applicable(schema, [*where, field])
            assert subschemas, (where, field)
            assert all(type_only(s) for s in subschemas), (where, field, subschemas)
    for listing in ("tests", "clauses"):
        for sub in applicable(schema, [listing]):
            assert set(sub) <= {"type", "items", "description"}, (listing, sub)


@pytest.mark.parametrize("problem", list(BAD))
def test_the_digest_is_invalid_exactly_when_the_report_is(problem):
    validator = report_io._validator()
    for report in (valid(), changed(BAD[problem][0])):
        assert validator.is_valid(report_io._digest(report)) == validator.is_valid(report)


def test_validating_a_full_report_is_fast():
    """The 2.13 matrix report (2601 tests in three modes): the digest keeps validation near the cost of parsing."""
    report = load_report(REPO_ROOT / "docs" / "reports" / "torch-2.13.0.json.gz")
    start = time.perf_counter()
    for _ in range(3):
        validate_report(report, "r.json")
    assert (time.perf_counter() - start) / 3 < 1.0


def test_unknown_fields_anywhere_are_ignored():
    report = valid()
    report["later"] = 1
    report["environment"]["later"] = 1
    report["clauses"][0]["later"] = 1
    report["clauses"][0]["devices"]["cpu"]["later"] = 1
    report["tests"][0]["later"] = 1
    report["expectations"]["later"] = 1
    validate_report(report, "r.json")
    json.dumps(report)
