"""``python -m conformance merge``: shard reports of one run combine into the serial run's report.

The end-to-end test runs a small conformance suite (passing, failing, known,
skipped, not applicable and stale-expectation cases) serially and as 1, 2 and
4 shards (``--shard I/N``, pytest-split), and checks that every merge equals
the serial report apart from ``created``, whatever the order of the shard
reports.  It runs eager only: pytester's in-process runs cannot repeat a
compiled mode (torch registers an operator library once per process), so the
compiled modes, an absent device and the "not applicable in compiled modes"
reason are checked on reports built by ``report.build_report`` and split
into shards by :func:`shards_of`, as are the refusals.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import textwrap
from pathlib import Path

import hypothesis
import pytest

from conformance.reporting.cli import main
from conformance.reporting.merge import merge_reports
from conformance.reporting.report_io import ReportError, load_report
from tests.test_plugin import clause_md

SPEC = "# Test area\n\n" + "\n".join(
    (
        clause_md("PASS-1", "holds"),
        clause_md("FAIL-1", "is violated", basis="observed", basis_note="nobody wrote it down"),
        clause_md("KNOWN-1", "fails, as expected"),
        clause_md("MIX-1", "one test passes, one fails as expected"),
        clause_md("SKIP-1", "skipped"),
        clause_md("EAGER-1", "not in compiled code", compiled="compiled code has no such thing"),
        clause_md("OLD-1", "for an old torch", versions="<1.0"),
    )
)

TESTS = """\
import pytest

@pytest.mark.spec("MIX-1")
def test_mix_passes(device):
    pass

@pytest.mark.spec("PASS-1")
def test_holds(device):
    pass

@pytest.mark.spec("PASS-1", "EAGER-1")
def test_holds_too():
    pass

@pytest.mark.spec("FAIL-1")
def test_violated(device):
    assert 1 == 2, "one is not two"

@pytest.mark.spec("KNOWN-1")
def test_known(device):
    assert False, "the known defect"

@pytest.mark.spec("SKIP-1")
def test_skipped(device):
    pytest.skip("nothing to check here")

@pytest.mark.spec("EAGER-1")
def test_eager_only(device):
    pass

@pytest.mark.spec("OLD-1")
def test_old(device):
    pass

@pytest.mark.spec("PASS-1")
@pytest.mark.parametrize("n", range(3))
def test_many(device, n):
    pass

@pytest.mark.spec("MIX-1")
def test_mix_fails(device):
    assert False, "the mixed defect"
"""

EXPECTATIONS = """\
[[expected_failure]]
clause = "KNOWN-1"
torch = ">=1.13"
devices = ["cpu"]
issue = "pytorch/pytorch#1"
reason = "known defect"

[[expected_failure]]
clause = "MIX-1"
torch = ">=1.13"
devices = ["cpu"]
issue = "pytorch/pytorch#2"
reason = "fails in one of its tests"

[[expected_failure]]
clause = "PASS-1"
test = "test_holds"
torch = ">=1.13"
devices = ["cpu"]
issue = "pytorch/pytorch#3"
reason = "was fixed: stale"

[[expected_failure]]
clause = "PASS-1"
test = "test_no_such_test"
torch = ">=1.13"
devices = ["cpu"]
issue = "pytorch/pytorch#4"
reason = "a typo: stale"
"""

def without_created(report: dict) -> dict:
    return {key: value for key, value in report.items() if key != "created"}


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("CONFORMANCE_PROFILE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    name = hypothesis.settings.get_current_profile_name()
    pytester.makeini("[pytest]\nconformance_testpaths = .\n")
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "area.md").write_text(SPEC, encoding="utf-8")
    (pytester.path / "expectations.toml").write_text(EXPECTATIONS, encoding="utf-8")
    pytester.makepyfile(test_conformance=textwrap.dedent(TESTS))
    yield pytester
    hypothesis.settings.load_profile(name)


def run(pytester: pytest.Pytester, report: str, *args: str) -> dict:
    pytester.runpytest(
        "-p", "conformance.plugin", "--specs-dir=specs", "--device=cpu",
        "--expectations=expectations.toml", f"--conformance-report={report}", *args,
    )
    return load_report(pytester.path / report)


def test_merged_shard_reports_equal_the_serial_report(suite, capsys):
    serial = run(suite, "serial.json")
    nodeids = [t["nodeid"] for t in serial["tests"]]
    # durations that put the two MIX-1 tests (its expectation's passing and failing test) in different shards
    durations = {nodeid: 1.0 for nodeid in nodeids}
    (suite.path / "durations.json").write_text(json.dumps(durations), encoding="utf-8")
    # what the serial run says, so that the comparison below compares something
    stale = {e["reason"]: e["why"] for e in serial["expectations"]["stale"]}
    assert stale == {
        "was fixed: stale": "its tests passed: the failure is gone, remove the entry",
        "a typo: stale": "it matches no collected test",
    }
    outcomes = {(c["id"], t): r["outcome"] for c in serial["clauses"] for t, r in c["devices"].items()}
    assert outcomes["KNOWN-1", "cpu"] == outcomes["MIX-1", "cpu"] == "known failure"
    assert outcomes["FAIL-1", "cpu"] == "failed" and outcomes["EAGER-1", "cpu"] == "passed"
    assert outcomes["OLD-1", "cpu"] == "not applicable" and outcomes["SKIP-1", "cpu"] == "skipped"
    assert serial["exit_status"] == 1 and serial["verdict"] == "violated"

    mix_stale_in_a_shard = False
    for count in (1, 2, 4):
        paths = []
        for index in range(1, count + 1):
            name = f"shard-{index}-of-{count}.json"
            shard = run(suite, name, f"--shard={index}/{count}", "--durations-path=durations.json")
            ran = [t for t in shard["tests"] if t["outcome"] != "not run"]
            assert ran and (count == 1 or len(ran) < len(nodeids)), name
            assert [t["nodeid"] for t in shard["tests"]] == nodeids, name
            mix_stale_in_a_shard |= any(e["clause"] == "MIX-1" for e in shard["expectations"]["stale"])
            paths.append(str(suite.path / name))
        for order in (paths, paths[::-1]):
            capsys.readouterr()  # the runs' output
            status = main(["merge", "-o", str(suite.path / "merged.json"), *order])
            captured = capsys.readouterr()
            assert (status, captured.out, captured.err) == (0, "", ""), order
            merged = load_report(suite.path / "merged.json")
            assert without_created(merged) == without_created(serial), f"{count} shards, {order}"
    # a shard that ran MIX-1's passing test but not its failing one calls the entry stale; the merge does not
    assert mix_stale_in_a_shard


def test_shard_option_rejects_bad_values(suite):
    for value, message in (
        ("3/2", "--shard 3/2: expected 1 <= I <= N"),
        ("0/2", "--shard 0/2: expected 1 <= I <= N"),
        ("two", "--shard expects I/N"),
    ):
        result = suite.runpytest("-p", "conformance.plugin", "--specs-dir=specs", f"--shard={value}")
        assert result.ret == pytest.ExitCode.USAGE_ERROR, value
        assert message in result.stderr.str(), value


# ----------------------------------------------------------------------------- refusals, from synthetic shards


@pytest.fixture(scope="module")
def serial_report(tmp_path_factory) -> dict:
    """A small serial report of the real writer (schema 2): the one of ``tests/fixtures/reports/compiled.json``
    would do too, but its tests list is short."""
    path = Path(__file__).parent / "fixtures" / "reports" / "compiled.json"
    return load_report(path)


def shards_of(report: dict, count: int) -> list[dict]:
    """``count`` shard reports of ``report``: each keeps every count-th test and marks the others not run."""
    shards = []
    for index in range(count):
        shard = copy.deepcopy(report)
        for position, entry in enumerate(shard["tests"]):
            if position % count != index:
                entry.update(outcome="not run", message="")
        shards.append(shard)
    return shards


def merged(*reports: dict) -> dict:
    return merge_reports([(f"shard-{i}.json", r) for i, r in enumerate(reports, 1)]).report


def test_merge_of_synthetic_shards_keeps_the_tests_and_is_order_independent(serial_report):
    shards = shards_of(serial_report, 2)
    results = [merged(*order) for order in itertools.permutations(shards)]
    assert results[0] == results[1]
    assert results[0]["tests"] == serial_report["tests"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r["environment"].update(torch="2.4.1"), "come from different torch versions"),
        (lambda r: r.update(suite_version="9.9.9"), "come from different suite versions"),
        (lambda r: r["environment"].update(hypothesis_profile="thorough"), "come from different hypothesis profiles"),
        (lambda r: r.update(devices=["cpu"], modes=["eager"]), "come from different devices"),
        (lambda r: r.update(modes=["eager", "compile:inductor"]), "come from different modes"),
        (lambda r: r["tests"].reverse(), "list different tests (tests[0] is"),
    ],
)
def test_merge_refuses_reports_of_different_runs(serial_report, change, expected):
    first, second = shards_of(serial_report, 2)
    change(second)
    with pytest.raises(ReportError, match=re.escape(expected)):
        merged(first, second)


def test_merge_refuses_overlapping_shards_with_different_outcomes(serial_report):
    first, second = copy.deepcopy(serial_report), copy.deepcopy(serial_report)
    entry = second["tests"][0]
    entry["outcome"] = "failed" if entry["outcome"] != "failed" else "passed"
    with pytest.raises(ReportError, match="ran in shard-.* and in shard-.*; expected each test to run in one shard"):
        merged(first, second)


def test_merge_cli_errors_are_one_line_and_exit_2(serial_report, tmp_path, capsys):
    first, second = shards_of(serial_report, 2)
    second["environment"]["torch"] = "2.4.1"
    paths = []
    for name, report in (("a.json", first), ("b.json", second)):
        (tmp_path / name).write_text(json.dumps(report), encoding="utf-8")
        paths.append(str(tmp_path / name))
    status = main(["merge", "-o", str(tmp_path / "out.json"), *paths])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and len(err.splitlines()) == 1
    assert "different torch versions" in err and not (tmp_path / "out.json").exists()
    status = main(["merge", str(tmp_path / "missing.json")])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith(f"error: {tmp_path / 'missing.json'}: no such file")


def test_merge_notes_tests_that_ran_in_no_shard(serial_report, tmp_path, capsys):
    first, _ = shards_of(serial_report, 2)  # the second shard's report is missing
    (tmp_path / "a.json").write_text(json.dumps(first), encoding="utf-8")
    status = main(["merge", "-o", str(tmp_path / "out.json"), str(tmp_path / "a.json")])
    captured = capsys.readouterr()
    assert status == 0 and captured.out == ""
    assert captured.err.startswith("note: 1 test ran in none of the 1 reports (first: ")
    assert "a shard report missing?" in captured.err


def labelled(shards: list[dict], count: int | None = None) -> list[dict]:
    """The shards as ``--shard I/N`` writes them: ``environment.shard``."""
    for index, shard in enumerate(shards, 1):
        shard["environment"]["shard"] = f"{index}/{count or len(shards)}"
    return shards


def test_merge_of_labelled_shards_drops_the_label_and_equals_the_serial_report(serial_report):
    assert merged(*labelled(shards_of(serial_report, 2)))["environment"] == serial_report["environment"]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda r: labelled(shards_of(r, 3))[:2], "shard report(s) missing: 3/3; expected shards 1..3 of 3"),
        (lambda r: labelled(shards_of(r, 2), 3), "shard report(s) missing: 3/3"),
        (lambda r: [*labelled(shards_of(r, 2))[:1], *labelled(shards_of(r, 2))[:1]], "are both shard 1/2"),
        (lambda r: [labelled(shards_of(r, 2))[0], shards_of(r, 2)[1]], "is not a shard report (no environment.shard)"),
        (lambda r: [*labelled(shards_of(r, 2))[:1], labelled(shards_of(r, 3))[2]], "shards of different splits"),
    ],
)
def test_merge_refuses_an_incomplete_or_mixed_set_of_labelled_shards(serial_report, make, expected):
    with pytest.raises(ReportError, match=re.escape(expected)):
        merged(*make(serial_report))


# ----------------------------------------------------------------------------- compiled modes, an absent device


class FakeClause:
    """A clause as ``report.build_report`` reads it (``ClauseLike``)."""

    def __init__(self, versions: str = ">=1.13", compiled: str | None = None) -> None:
        self.title, self.path, self.area = "a clause", Path("area.md"), "Area"
        self.versions, self.basis, self.basis_note, self.compiled = versions, "documented", "", compiled

    def applies_to(self, torch_version: str) -> bool:
        return self.versions != "<1.0"

    def not_applicable_in(self, mode: str) -> str | None:
        return self.compiled if mode != "eager" else None


class FakeStatus:
    def __init__(self, available: bool, reason: str = "") -> None:
        self.available, self.reason = available, reason


CLAUSES = {
    "PASS-1": FakeClause(),
    "FAIL-1": FakeClause(),
    "EAGER-1": FakeClause(compiled="EAGER-1 is not applicable in compiled modes: no such thing compiled"),
    "OLD-1": FakeClause(versions="<1.0"),
}
#: (clause, outcome in eager, outcome in compile:aot_eager) of a test on each device
PROGRAM = [
    ("PASS-1", "passed", "not compiled"),
    ("PASS-1", "passed", "passed"),
    ("FAIL-1", "passed", "failed"),
    ("EAGER-1", "passed", "skipped"),
    ("OLD-1", "skipped", "skipped"),
    ("FAIL-1", "known failure", "passed"),
]
STATUS = {"cpu": FakeStatus(True), "cuda": FakeStatus(False, "no CUDA device")}
MODES_RUN = ["eager", "compile:aot_eager"]


def built_records() -> list:
    from conformance.reporting.report import TestRecord

    records = []
    for mode in MODES_RUN:
        for device in STATUS:
            for number, (cid, eager, compiled) in enumerate(PROGRAM):
                outcome = (eager if mode == "eager" else compiled) if STATUS[device].available else "skipped"
                records.append(
                    TestRecord(f"t.py::test_{number}[{device}-{mode}]", (cid,), device, outcome,
                               f"{outcome} message" if outcome != "passed" else "", mode=mode)
                )
    return records


def built_report(records: list, exit_status: int = 1) -> dict:
    from conformance.reporting.report import build_report

    environment = {"torch": "2.13.0+cpu", "hypothesis_profile": "ci", "hypothesis_seed": None,
                   "device_status": {d: {"available": s.available, "reason": s.reason, "name": None} for d, s in STATUS.items()}}
    return build_report(CLAUSES, records, devices=list(STATUS), device_status=STATUS, environment=environment,
                        exit_status=exit_status, modes=MODES_RUN)


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_merge_recomputes_compiled_and_absent_device_outcomes_as_a_serial_run(count):
    from conformance.reporting.report import TestRecord

    records = built_records()
    serial = built_report(records)
    outcomes = {(c["id"], t): r["outcome"] for c in serial["clauses"] for t, r in c["devices"].items()}
    assert outcomes["EAGER-1", "cpu@compile:aot_eager"] == "not applicable"
    assert outcomes["OLD-1", "cpu"] == "not applicable" and outcomes["PASS-1", "cuda"] == "skipped"
    assert outcomes["FAIL-1", "cpu"] == "known failure" and outcomes["FAIL-1", "cpu@compile:aot_eager"] == "failed"
    shards = []
    for index in range(count):
        mine = [
            r if position % count == index else TestRecord(r.nodeid, r.clauses, r.device, mode=r.mode)
            for position, r in enumerate(records)
        ]
        shards.append(built_report(mine, exit_status=1 if index == 0 else 5 if count > 2 and index == 1 else 0))
    for order in itertools.permutations(shards):
        assert without_created(merged(*order)) == without_created(serial)
