"""``python -m conformance diff OLD NEW``: categories, their order, formats and exit statuses.

The reports are built with ``tests/report_fixtures.py``; ``SCENARIO`` below
holds one change of every kind, so the expected output can be read next to it.
"""

from __future__ import annotations

import re

import pytest

from conformance.reporting.cli import main
from conformance.reporting.diff import classify, diff_reports
from tests.report_fixtures import (
    absent_device,
    clause,
    compiled_report,
    make_report,
    record,
    write_report,
)

# (clause id, old cpu outcome, new cpu outcome); None: the clause is not in that report at all.
SCENARIO = [
    ("ACCUM-1", "passed", "passed"),  # unchanged
    ("ACCUM-2", "passed", "failed"),  # regression
    ("ACCUM-3", "not applicable", "failed"),  # regression: newly required, and broken
    ("ACCUM-4", "passed", "known failure"),  # newly known failure
    ("ACCUM-5", "failed", "passed"),  # fix
    ("ACCUM-6", "known failure", "passed"),  # fix
    ("ACCUM-7", "passed", "not applicable"),  # no longer applicable
    ("ACCUM-8", "not applicable", "passed"),  # newly applicable
    ("HOOK-1", "passed", None),  # gone from NEW
    ("HOOK-2", None, "passed"),  # new in NEW
    ("HOOK-3", None, "failed"),  # regression: a new clause that fails
    ("HOOK-4", "passed", "skipped"),  # other
    ("HOOK-5", "untested", "passed"),  # other
    ("HOOK-6", "failed", "failed"),  # still failing: not listed
]

DETAILS = {
    "failed": "AssertionError: boom",
    "known failure": "pytorch/pytorch#42: acknowledged",
    "skipped": "needs numpy",
    "not applicable": "applies to >=2.0",
}


def scenario_report(which: int, torch: str, **kwargs) -> dict:
    clauses = [
        clause(cid, f"title of {cid}", cpu=record(outcomes[which], DETAILS.get(outcomes[which], "")))
        for cid, *outcomes in SCENARIO
        if outcomes[which] is not None
    ]
    return make_report(torch=torch, clauses=clauses, **kwargs)


@pytest.fixture
def scenario(tmp_path) -> tuple[str, str]:
    old = write_report(tmp_path, "old.json", scenario_report(0, "1.13.1"))
    new = write_report(tmp_path, "new.json", scenario_report(1, "2.15.0"))
    return old, new


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def diff_of(tmp_path, capsys, old: dict, new: dict, *options: str) -> tuple[int, str, str]:
    """Write ``old`` and ``new`` and run ``diff`` on them."""
    paths = write_report(tmp_path, "old.json", old), write_report(tmp_path, "new.json", new)
    return run_cli(capsys, "diff", *options, *paths)


def entry_lines(out: str) -> list[list[str]]:
    """The change lines of text output, split into their columns."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines() if line.startswith("  ")]


# ----------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("old", "new", "category"),
    [
        ("passed", "passed", None),
        ("failed", "failed", None),
        (None, "failed", "regression"),
        ("passed", "failed", "regression"),
        ("known failure", "failed", "regression"),
        ("not applicable", "failed", "regression"),
        ("skipped", "failed", "regression"),
        ("untested", "failed", "regression"),
        ("passed", "known failure", "newly known failure"),
        ("failed", "passed", "fix"),
        ("known failure", "passed", "fix"),
        ("passed", "not applicable", "applicability"),
        ("not applicable", "passed", "applicability"),
        ("failed", "not applicable", "applicability"),
        (None, "passed", "applicability"),
        (None, "known failure", "applicability"),
        ("failed", None, "applicability"),
        ("passed", "skipped", "other"),
        ("skipped", "passed", "other"),
        ("untested", "passed", "other"),
        ("failed", "known failure", "other"),
        ("skipped", "known failure", "other"),
        ("failed", "skipped", "other"),
        ("passed", "not compiled", "no longer compiled"),
        ("not compiled", "failed", "regression"),
        ("not compiled", "passed", "other"),
        ("known failure", "not compiled", "other"),
        ("failed", "not compiled", "other"),
        (None, "not compiled", "applicability"),
        ("not compiled", "not applicable", "applicability"),
    ],
)
def test_classify(old, new, category):
    assert classify(old, new) == category


# ----------------------------------------------------------------------------- text output


def test_text_header_counts_every_category(scenario, capsys):
    _, out, err = run_cli(capsys, "diff", *scenario)
    assert err == ""
    assert out.splitlines()[0] == (
        "torch 1.13.1 → torch 2.15.0 on cpu: 3 regressions, 1 newly known failure, 2 fixes, "
        "4 applicability changes, 2 other changes"
    )


def test_text_lists_categories_in_order_with_one_line_per_change(scenario, capsys):
    _, out, _ = run_cli(capsys, "diff", *scenario)
    headings = re.findall(r"^(\S.*) \((\d+)\):$", out, flags=re.MULTILINE)
    assert headings == [
        ("Regressions", "3"),
        ("Newly known failures", "1"),
        ("Fixes", "2"),
        ("Newly applicable / no longer applicable", "4"),
        ("Other changes", "2"),
    ]
    assert entry_lines(out) == [
        ["ACCUM-2", "cpu", "passed → failed", "title of ACCUM-2 — AssertionError: boom"],
        ["ACCUM-3", "cpu", "not applicable → failed", "title of ACCUM-3 — AssertionError: boom"],
        ["HOOK-3", "cpu", "(new clause) → failed", "title of HOOK-3 — AssertionError: boom"],
        ["ACCUM-4", "cpu", "passed → known failure", "title of ACCUM-4 — pytorch/pytorch#42: acknowledged"],
        ["ACCUM-5", "cpu", "failed → passed", "title of ACCUM-5"],
        ["ACCUM-6", "cpu", "known failure → passed", "title of ACCUM-6"],
        ["ACCUM-7", "cpu", "passed → not applicable", "title of ACCUM-7 — applies to >=2.0"],
        ["ACCUM-8", "cpu", "not applicable → passed", "title of ACCUM-8"],
        ["HOOK-2", "cpu", "(new clause) → passed", "title of HOOK-2"],
        ["HOOK-1", "cpu", "passed → (clause gone)", "title of HOOK-1"],
        ["HOOK-4", "cpu", "passed → skipped", "title of HOOK-4 — needs numpy"],
        ["HOOK-5", "cpu", "untested → passed", "title of HOOK-5"],
    ]


def test_unchanged_failures_are_counted_not_listed(scenario, capsys):
    _, out, _ = run_cli(capsys, "diff", *scenario)
    assert "HOOK-6" not in out
    assert out.rstrip().endswith("1 clause × device pair failed in both reports (not listed).")


def test_regression_exits_1(scenario, capsys):
    assert run_cli(capsys, "diff", *scenario)[0] == 1


def test_fixes_and_known_failures_alone_exit_0(tmp_path, capsys):
    old = make_report(clauses=[clause("ACCUM-1", cpu="failed"), clause("ACCUM-2", cpu="passed")])
    new = make_report(clauses=[clause("ACCUM-1", cpu="passed"), clause("ACCUM-2", cpu=record("known failure", "why"))])
    status, out, _ = diff_of(tmp_path, capsys, old, new)
    assert status == 0
    assert out.startswith("torch 2.13.0+cpu → torch 2.13.0+cpu on cpu: 0 regressions, 1 newly known failure, 1 fix,")
    assert "Regressions" not in out


def test_nothing_changed_says_so(tmp_path, capsys):
    report = make_report(devices=["cpu", "cuda"], clauses=[clause("ACCUM-1", cpu="passed", cuda="passed")])
    path = write_report(tmp_path, "r.json", report)
    status, out, _ = run_cli(capsys, "diff", path, path)
    assert status == 0
    assert out == (
        "torch 2.13.0+cpu → torch 2.13.0+cpu on cpu, cuda: 0 regressions, 0 newly known failures, 0 fixes, "
        "0 applicability changes, 0 other changes\n"
        "\n"
        "No outcome changed: all 2 clause × device pairs compared are the same.\n"
    )


def test_a_device_without_tests_before_and_with_a_failure_now_is_a_regression(tmp_path, capsys):
    old = make_report(devices=["cpu", "cuda"], clauses=[clause("ACCUM-1", cpu="passed")])
    new = make_report(devices=["cpu", "cuda"], clauses=[clause("ACCUM-1", cpu="passed", cuda="failed")])
    status, out, _ = diff_of(tmp_path, capsys, old, new)
    assert status == 1
    assert entry_lines(out) == [["ACCUM-1", "cuda", "(no tests) → failed", "title of ACCUM-1"]]


# ----------------------------------------------------------------------------- markdown output


def test_markdown_has_the_same_content_as_sections_and_tables(scenario, capsys):
    status, out, _ = run_cli(capsys, "diff", "--format", "markdown", *scenario)
    assert status == 1
    assert out.startswith("## Autograd conformance: torch 1.13.1 → torch 2.15.0\n")
    assert "❌ **3 regressions**, 1 newly known failure, 2 fixes, 4 applicability changes, 2 other changes" in out
    assert re.findall(r"^### (.+)$", out, flags=re.MULTILINE) == [
        "❌ Regressions (3)",
        "⚠️ Newly known failures (1)",
        "✅ Fixes (2)",
        "➖ Newly applicable / no longer applicable (4)",
        "🔄 Other changes (2)",
    ]
    assert "| clause | device | old → new | title | basis | message / reason |" in out
    assert "| ACCUM-2 | cpu | ✅ passed → ❌ failed | title of ACCUM-2 |  | `AssertionError: boom` |" in out
    assert "| HOOK-3 | cpu | *(new clause)* → ❌ failed | title of HOOK-3 |  | `AssertionError: boom` |" in out
    assert "| ✅ passed → ⚠️ known failure | title of ACCUM-4 |  | `pytorch/pytorch#42: acknowledged` |" in out
    assert "| HOOK-1 | cpu | ✅ passed → *(clause gone)* | title of HOOK-1 |  |  |" in out
    assert "passed → failed  " not in out  # no text-format lines


def test_markdown_without_changes_says_so(tmp_path, capsys):
    path = write_report(tmp_path, "r.json", make_report(clauses=[clause("ACCUM-1", cpu="passed")]))
    status, out, _ = run_cli(capsys, "diff", "--format=markdown", path, path)
    assert status == 0
    assert "✅ 0 regressions," in out
    assert "No outcome changed: all 1 clause × device pair compared are the same." in out
    assert "###" not in out


# ----------------------------------------------------------------------------- comparability


def test_different_suite_versions_are_refused(tmp_path, capsys):
    old = write_report(tmp_path, "old.json", scenario_report(0, "2.9.1"))
    new = write_report(tmp_path, "new.json", scenario_report(1, "2.10.0", suite_version="0.2.0"))
    status, out, err = run_cli(capsys, "diff", old, new)
    assert (status, out) == (2, "")
    assert err == (
        f"error: {old} (suite 0.1.0) and {new} (suite 0.2.0) come from different suite versions, "
        "whose clauses may mean different things; expected the same suite version "
        "(pass --allow-suite-change to compare anyway)\n"
    )


def test_allow_suite_change_compares_anyway_and_says_so(tmp_path, capsys):
    old = write_report(tmp_path, "old.json", scenario_report(0, "2.9.1"))
    new = write_report(tmp_path, "new.json", scenario_report(1, "2.10.0", suite_version="0.2.0"))
    status, out, err = run_cli(capsys, "diff", "--allow-suite-change", old, new)
    assert (status, err) == (1, "")
    assert "Suite version changed: 0.1.0 → 0.2.0 (--allow-suite-change)." in out


def test_reports_without_a_common_device_are_refused(tmp_path, capsys):
    old = write_report(tmp_path, "old.json", make_report(devices=["cpu"], clauses=[clause("ACCUM-1", cpu="passed")]))
    new = write_report(tmp_path, "new.json", make_report(devices=["cuda"], clauses=[clause("ACCUM-1", cuda="passed")]))
    status, out, err = run_cli(capsys, "diff", old, new)
    assert (status, out) == (2, "")
    assert err == (
        f"error: {old} (devices: cpu) and {new} (devices: cuda) share no device; expected at least one device in both\n"
    )


def test_only_devices_of_both_reports_are_compared(tmp_path, capsys):
    old = make_report(devices=["cpu", "mps"], clauses=[clause("ACCUM-1", cpu="passed", mps="passed")])
    new = make_report(devices=["cpu", "cuda"], clauses=[clause("ACCUM-1", cpu="passed", cuda="failed")])
    status, out, _ = diff_of(tmp_path, capsys, old, new)
    assert status == 0  # the cuda failure has nothing to compare with; mps is gone from NEW
    assert out.startswith("torch 2.13.0+cpu → torch 2.13.0+cpu on cpu: 0 regressions")


def test_an_absent_device_skipped_in_both_reports_is_no_change(tmp_path, capsys):
    old = absent_device(make_report(devices=["cpu", "cuda"], clauses=[clause("ACCUM-1", cpu="passed")]), "cuda", "x")
    new = absent_device(make_report(devices=["cpu", "cuda"], clauses=[clause("ACCUM-1", cpu="passed")]), "cuda", "y")
    status, out, _ = diff_of(tmp_path, capsys, old, new)
    assert status == 0
    assert "No outcome changed" in out


def test_bad_input_exits_2_naming_the_file(tmp_path, scenario, capsys):
    missing = str(tmp_path / "missing.json")
    status, out, err = run_cli(capsys, "diff", scenario[0], missing)
    assert (status, out) == (2, "")
    assert err == f"error: {missing}: no such file; expected a conformance report (JSON)\n"


# ----------------------------------------------------------------------------- output file, API


def test_output_file_keeps_the_exit_status(scenario, tmp_path, capsys):
    target = tmp_path / "diff.md"
    status, out, _ = run_cli(capsys, "diff", "--format", "markdown", "-o", str(target), *scenario)
    assert (status, out) == (1, "")
    assert target.read_text(encoding="utf-8").startswith("## Autograd conformance: torch 1.13.1 → torch 2.15.0\n")


def test_diff_reports_api_on_loaded_reports():
    result = diff_reports(scenario_report(0, "1.13.1"), scenario_report(1, "2.15.0"))
    assert [c.clause_id for c in result.regressions] == ["ACCUM-2", "ACCUM-3", "HOOK-3"]
    assert result.regressions[0].detail == "AssertionError: boom"
    assert (result.compared, result.still_failing) == (14, 1)


# ----------------------------------------------------------------------------- the clauses' basis


def based_reports(basis_old: str | None, basis_new: str | None) -> tuple[dict, dict]:
    """ACCUM-1 passes in OLD and fails in NEW; ACCUM-2 regresses too and is documented in both."""
    old = make_report(
        clauses=[clause("ACCUM-1", basis=basis_old, cpu="passed"), clause("ACCUM-2", basis="documented", cpu="passed")]
    )
    new = make_report(
        clauses=[
            clause("ACCUM-1", basis=basis_new, cpu=record("failed", "AssertionError: boom")),
            clause("ACCUM-2", basis="documented", cpu=record("failed", "AssertionError: bang")),
        ]
    )
    return old, new


def test_a_regressed_observed_clause_says_no_docs_sentence_states_it(tmp_path, capsys):
    status, out, _ = diff_of(tmp_path, capsys, *based_reports("observed", "observed"))
    assert status == 1  # an observed clause that regressed still fails the gate
    assert entry_lines(out) == [
        ["ACCUM-1", "cpu", "passed → failed", "title of ACCUM-1 (observed: no docs sentence states it) — AssertionError: boom"],
        ["ACCUM-2", "cpu", "passed → failed", "title of ACCUM-2 — AssertionError: bang"],
    ]
    assert "Of the regressions, 1 observed (no docs sentence promises the old behaviour" in out


def test_a_regressed_deprecated_clause_says_the_api_will_change(tmp_path, capsys):
    _, out, _ = diff_of(tmp_path, capsys, *based_reports("deprecated", "deprecated"))
    assert "title of ACCUM-1 (deprecated: the docs say this API is deprecated or will change) — AssertionError" in out


def test_markdown_diff_has_the_basis_column(tmp_path, capsys):
    _, out, _ = diff_of(tmp_path, capsys, *based_reports("observed", "observed"), "--format", "markdown")
    assert "| ACCUM-1 | cpu | ✅ passed → ❌ failed | title of ACCUM-1 | observed: no docs sentence states it |" in out
    assert "| ACCUM-2 | cpu | ✅ passed → ❌ failed | title of ACCUM-2 | documented | `AssertionError: bang` |" in out


def test_the_new_reports_basis_is_used_and_an_old_report_without_one_is_fine(tmp_path, capsys):
    """A report written before clauses carried a basis compares with a new one: NEW's basis is the one shown."""
    old, new = based_reports(None, "observed")
    result = diff_reports(old, new)
    assert [(c.clause_id, c.basis, c.remark) for c in result.regressions] == [
        ("ACCUM-1", "observed", "observed: no docs sentence states it"),
        ("ACCUM-2", "documented", ""),
    ]
    old, new = based_reports("observed", None)  # NEW without a basis: OLD's describes the clause
    assert diff_reports(old, new).regressions[0].basis == "observed"
    old, new = based_reports(None, None)
    assert [c.basis for c in diff_reports(old, new).regressions] == [None, "documented"]


# ----------------------------------------------------------------------------- compiled modes (schema 2)

AOT = "compile:aot_eager"
CPU_AOT = f"cpu@{AOT}"
GRAPH_BREAK = "graph break: Tensor.backward() inside the compiled function"

# (clause id, {mode: old outcome}, {mode: new outcome}) on cpu
COMPILED_SCENARIO = [
    ("ACCUM-1", {"eager": "passed", AOT: "passed"}, {"eager": "passed", AOT: "passed"}),  # unchanged
    ("ACCUM-2", {"eager": "passed", AOT: "passed"}, {"eager": "passed", AOT: "failed"}),  # compiled regression
    ("ACCUM-3", {"eager": "passed", AOT: "passed"}, {"eager": "passed", AOT: "not compiled"}),  # no longer compiled
    ("ACCUM-4", {"eager": "passed", AOT: "not compiled"}, {"eager": "passed", AOT: "passed"}),  # compiled now: other
    ("ACCUM-5", {"eager": "passed", AOT: "passed"}, {"eager": "passed", AOT: "known failure"}),  # newly known failure
    ("HOOK-1", {"eager": "passed", AOT: "passed"}, {"eager": "failed", AOT: "passed"}),  # eager regression
]
COMPILED_DETAILS = DETAILS | {"not compiled": GRAPH_BREAK}


def compiled_scenario(which: int, torch: str) -> dict:
    outcomes = {
        cid: {mode: record(outcome, COMPILED_DETAILS.get(outcome, "")) for mode, outcome in per_mode[which].items()}
        for cid, *per_mode in COMPILED_SCENARIO
    }
    return compiled_report(outcomes, torch=torch)


@pytest.fixture
def compiled_diff(tmp_path, capsys) -> tuple[int, str]:
    status, out, err = diff_of(tmp_path, capsys, compiled_scenario(0, "2.9.1"), compiled_scenario(1, "2.10.0"))
    assert err == ""
    return status, out


def test_compiled_targets_are_compared_and_named(compiled_diff):
    status, out = compiled_diff
    assert status == 1
    assert out.splitlines()[0] == (
        "torch 2.9.1 → torch 2.10.0 on cpu, cpu@compile:aot_eager: 2 regressions, 1 no longer compiled, "
        "1 newly known failure, 0 fixes, 0 applicability changes, 1 other change"
    )
    assert entry_lines(out) == [
        ["ACCUM-2", CPU_AOT, "passed → failed", "title of ACCUM-2 — AssertionError: boom"],
        ["HOOK-1", "cpu", "passed → failed", "title of HOOK-1 — AssertionError: boom"],
        ["ACCUM-3", CPU_AOT, "passed → not compiled", f"title of ACCUM-3 — {GRAPH_BREAK}"],
        ["ACCUM-5", CPU_AOT, "passed → known failure", "title of ACCUM-5 — pytorch/pytorch#42: acknowledged"],
        ["ACCUM-4", CPU_AOT, "not compiled → passed", "title of ACCUM-4"],
    ]


def test_compiled_regressions_and_lost_compilation_are_explained(compiled_diff):
    _, out = compiled_diff
    headings = re.findall(r"^(\S.*) \((\d+)\):$", out, flags=re.MULTILINE)
    assert headings == [
        ("Regressions", "2"),
        ("No longer compiled", "1"),
        ("Newly known failures", "1"),
        ("Other changes", "1"),
    ]
    assert (
        "Of the regressions, 1 in compiled modes (compile:aot_eager): the clause held there in OLD and fails in NEW."
    ) in out
    assert "No longer compiled (compile:aot_eager): the tests still pass, but no longer through compiled code" in out


def test_no_longer_compiled_alone_does_not_fail_the_gate(tmp_path, capsys):
    old = compiled_report({"ACCUM-1": {"eager": "passed", AOT: "passed"}})
    new = compiled_report({"ACCUM-1": {"eager": "passed", AOT: record("not compiled", GRAPH_BREAK)}})
    status, out, _ = diff_of(tmp_path, capsys, old, new)
    assert status == 0
    assert "0 regressions, 1 no longer compiled," in out.splitlines()[0]
    result = diff_reports(old, new)
    [change] = result.changes["no longer compiled"]
    assert (change.target, change.device, change.mode, change.detail) == (CPU_AOT, "cpu", AOT, GRAPH_BREAK)


def test_compiled_markdown_has_a_mode_column(tmp_path, capsys):
    status, out, _ = diff_of(
        tmp_path, capsys, compiled_scenario(0, "2.9.1"), compiled_scenario(1, "2.10.0"), "--format", "markdown"
    )
    assert status == 1
    assert "(targets compared: cpu, cpu@compile:aot\\_eager)" in out
    assert re.findall(r"^### (.+)$", out, flags=re.MULTILINE) == [
        "❌ Regressions (2)",
        "🔁 No longer compiled (1)",
        "⚠️ Newly known failures (1)",
        "🔄 Other changes (1)",
    ]
    assert "| clause | device | mode | old → new | title | basis | message / reason |" in out
    assert (
        "| ACCUM-2 | cpu | compile:aot\\_eager | ✅ passed → ❌ failed | title of ACCUM-2 |  | `AssertionError: boom` |"
    ) in out
    assert "| HOOK-1 | cpu | eager | ✅ passed → ❌ failed |" in out
    assert (
        f"| ACCUM-3 | cpu | compile:aot\\_eager | ✅ passed → 🔁 not compiled | title of ACCUM-3 |  | `{GRAPH_BREAK}` |"
    ) in out


def test_an_eager_diff_does_not_count_compilation(scenario, capsys):
    """Reports without compiled targets: no 'no longer compiled' count, no mode column (the output reads as before)."""
    _, out, _ = run_cli(capsys, "diff", *scenario)
    assert "compiled" not in out
    _, out, _ = run_cli(capsys, "diff", "--format", "markdown", *scenario)
    assert "compiled" not in out and "| mode |" not in out


def test_a_schema_1_report_compares_with_the_eager_targets_of_a_schema_2_report(tmp_path, capsys):
    v1 = make_report(torch="2.9.1", clauses=[clause("ACCUM-1", cpu="passed"), clause("ACCUM-2", cpu="passed")])
    v2 = compiled_report(
        {"ACCUM-1": {"eager": "failed", AOT: "passed"}, "ACCUM-2": {"eager": "passed", AOT: "not compiled"}},
        torch="2.10.0",
    )
    assert (v1["schema_version"], v2["schema_version"]) == (1, 2)
    status, out, _ = diff_of(tmp_path, capsys, v1, v2)
    assert status == 1
    assert out.splitlines()[0].startswith("torch 2.9.1 → torch 2.10.0 on cpu: 1 regression, 0 newly known failures,")
    assert entry_lines(out) == [["ACCUM-1", "cpu", "passed → failed", "title of ACCUM-1"]]
    assert "Mode only in NEW, not compared: compile:aot_eager." in out
    status, out, _ = diff_of(tmp_path, capsys, v2, v1)  # and the other way round
    assert status == 0
    assert "Mode only in OLD, not compared: compile:aot_eager." in out


def test_reports_without_a_common_target_are_refused(tmp_path, capsys):
    eager = make_report(clauses=[clause("ACCUM-1", cpu="passed")])
    compiled_only = compiled_report({"ACCUM-1": {AOT: "passed"}}, modes=[AOT])
    status, out, err = diff_of(tmp_path, capsys, eager, compiled_only)
    assert (status, out) == (2, "")
    assert err == (
        f"error: {tmp_path / 'old.json'} (targets: cpu) and {tmp_path / 'new.json'} (targets: cpu@compile:aot_eager) "
        "share no target; expected at least one device in one mode in both (a schema-1 report holds eager targets only)\n"
    )


def test_nothing_changed_in_a_compiled_run_counts_target_pairs(tmp_path, capsys):
    path = write_report(tmp_path, "r.json", compiled_scenario(0, "2.9.1"))
    status, out, _ = run_cli(capsys, "diff", path, path)
    assert status == 0
    assert out.endswith("No outcome changed: all 12 clause × target pairs compared are the same.\n")
