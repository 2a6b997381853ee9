"""The report-reading tools: ``python -m conformance summary | matrix`` and the loader behind all three.

Most tests call :func:`conformance.reporting.cli.main` in-process with reports built by
``tests/report_fixtures.py``; a few read the hand-written files in
``tests/fixtures/reports/`` and one runs ``python -m conformance`` in a
subprocess.  ``diff`` has its own module, ``tests/test_cli_diff.py``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import hypothesis
import pytest

from conformance.reporting import report_io
from conformance.reporting.cli import main
from conformance.reporting.report_io import ReportError, load_report
from tests.report_fixtures import (
    absent_device,
    clause,
    compiled_report,
    make_report,
    record,
    write_report,
)

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DOC = REPO_ROOT / "docs" / "report-schema.md"


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def table_row(text: str, first_cell: str) -> list[str]:
    """The cells of the Markdown table row whose first cell is ``first_cell``."""
    for line in text.splitlines():
        if line.startswith("| ") and line.split(" | ")[0] == f"| {first_cell}":
            return [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
    raise AssertionError(f"no table row starts with {first_cell!r} in:\n{text}")


def header_row(text: str) -> list[str]:
    """The cells of the first Markdown table header whose first cell is ``clause``."""
    return table_row(text, "clause")


# ----------------------------------------------------------------------------- loading and validation


def without(report: dict, key: str) -> dict:
    return {k: v for k, v in report.items() if k != key}


def valid() -> dict:
    return make_report(clauses=[clause("ACCUM-1", cpu="passed")])


def first_clause_with(**fields: object) -> dict:
    report = valid()
    report["clauses"][0].update(fields)
    return report


def compiled_with(**fields: object) -> dict:
    """A valid schema-2 report whose compiled record of ACCUM-1 gets ``fields``."""
    report = compiled_report({"ACCUM-1": {"eager": "passed", "compile:aot_eager": "passed"}})
    report["clauses"][0]["devices"]["cpu@compile:aot_eager"].update(fields)
    return report


BAD_REPORTS = {
    "top level is a list": ([1, 2], "the top level is a list; expected a JSON object"),
    "no schema": (without(valid(), "schema"), "no 'schema' key; expected 'schema': 'autograd-conformance-report'"),
    "no schema_version": (
        without(valid(), "schema_version"),
        "no 'schema_version' key; expected 'schema_version': 1 or 2",
    ),
    "schema_version as text": (
        dict(valid(), schema_version="1"),
        "'schema_version' is '1'; this reader understands schema versions 1 and 2 (a newer suite",
    ),
    "schema_version 3": (dict(valid(), schema_version=3), "'schema_version' is 3; this reader understands schema"),
    "schema 2 without modes": (dict(valid(), schema_version=2), "missing required key 'modes' (report schema version 2"),
    "modes not a list": (dict(valid(), schema_version=2, modes="eager"), "'modes' is a string; expected a list"),
    "target in an unlisted mode": (
        make_report(modes=["eager"], devices=["cpu"]) | {"devices": ["cpu", "cpu@compile:inductor"]},
        "target 'cpu@compile:inductor' in 'devices' is in mode 'compile:inductor', which 'modes' ('eager') does not list",
    ),
    "not compiled in a schema-1 report": (
        first_clause_with(devices={"cpu": {"outcome": "not compiled"}}),
        "devices['cpu']: 'outcome' is 'not compiled', new in schema version 2, and the report says 'schema_version': 1",
    ),
    "compiled record's mode not a string": (
        compiled_with(mode=1),
        "clauses[0] (ACCUM-1): devices['cpu@compile:aot_eager']: 'mode' is an integer; expected a string",
    ),
    "no devices": (without(valid(), "devices"), "missing required key 'devices'"),
    "no verdict nor devices": (
        without(without(valid(), "verdict"), "devices"),
        "missing required keys 'verdict', 'devices'",
    ),
    "unknown verdict": (dict(valid(), verdict="maybe"), "'verdict' is 'maybe'; expected one of 'conforms', 'violated'"),
    "clauses not a list": (dict(valid(), clauses={}), "'clauses' is an object; expected a list"),
    "environment without torch": (
        dict(valid(), environment={"python": "3.11"}),
        "'environment': missing required key 'torch' (torch.__version__)",
    ),
    "clause without title": (
        make_report(clauses=[{"id": "ACCUM-1", "area": "accumulation", "devices": {}}]),
        "clauses[0] (ACCUM-1): missing required key 'title'",
    ),
    "unknown outcome": (
        first_clause_with(devices={"cpu": {"outcome": "xfailed"}}),
        "clauses[0] (ACCUM-1): devices['cpu']: 'outcome' is 'xfailed'; expected one of 'failed', 'known failure'",
    ),
    "record without outcome": (
        first_clause_with(devices={"cpu": {"reason": ""}}),
        "clauses[0] (ACCUM-1): devices['cpu']: missing required key 'outcome'",
    ),
    "unknown basis": (
        first_clause_with(basis="folklore"),
        "clauses[0] (ACCUM-1): 'basis' is 'folklore'; expected one of 'documented', 'observed', 'deprecated'",
    ),
    "basis not a string": (first_clause_with(basis=None), "clauses[0] (ACCUM-1): 'basis' is null; expected one of 'documented', 'observed'"),
    "duplicate clause": (
        make_report(clauses=[clause("ACCUM-1", cpu="passed"), clause("ACCUM-1", cpu="failed")]),
        "clause 'ACCUM-1' appears twice in 'clauses'",
    ),
}


@pytest.mark.parametrize("problem", list(BAD_REPORTS))
def test_invalid_report_is_one_error_line_naming_file_and_problem(problem, tmp_path, capsys):
    content, expected = BAD_REPORTS[problem]
    path = write_report(tmp_path, "bad.json", content)
    status, out, err = run_cli(capsys, "summary", path)
    assert status == 2
    assert out == ""
    assert err.startswith(f"error: {path}: ")
    assert expected in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("not-json.json", "not JSON (Expecting value at line 1 column 1); expected a conformance report"),
        ("wrong-schema.json", "'schema' is 'pytest-json-report'; expected 'schema': 'autograd-conformance-report'"),
        ("schema-version-99.json", "'schema_version' is 99; this reader understands schema versions 1 and 2"),
        ("missing-clauses.json", "missing required key 'clauses' (report schema version 1"),
        ("no-such-report.json", "no such file; expected a conformance report (JSON)"),
    ],
)
def test_bad_fixture_files_are_refused_by_every_command(name, expected, capsys):
    bad, good = str(FIXTURES / name), str(FIXTURES / "new.json")
    for argv in (["summary", bad], ["diff", good, bad], ["diff", bad, good], ["matrix", good, bad]):
        status, out, err = run_cli(capsys, *argv)
        assert (status, out) == (2, ""), argv
        assert err.startswith(f"error: {bad}: ") and len(err.splitlines()) == 1, argv
        assert expected in err, argv


def test_a_directory_is_not_a_report(tmp_path, capsys):
    status, _, err = run_cli(capsys, "summary", str(tmp_path))
    assert status == 2
    assert err == f"error: {tmp_path}: is a directory; expected a conformance report file (JSON)\n"


def test_load_report_raises_a_value_error_subclass(tmp_path):
    path = write_report(tmp_path, "r.json", dict(valid(), schema_version=3))
    with pytest.raises(ReportError, match="schema_version' is 3") as info:
        load_report(path)
    assert isinstance(info.value, ValueError)


def test_unknown_fields_are_ignored(tmp_path):
    """Fields may be added within a schema version: readers ignore them."""
    report = valid()
    report["added_later"] = {"anything": 1}
    report["clauses"][0]["devices"]["cpu"]["duration"] = 0.5
    assert load_report(write_report(tmp_path, "r.json", report))["added_later"] == {"anything": 1}


def test_accessors_key_records_by_clause_and_device():
    report = make_report(
        torch="2.9.1",
        devices=["cpu", "cuda"],
        clauses=[clause("ACCUM-1", cpu="passed", cuda="failed"), clause("HOOK-1", cpu="skipped")],
    )
    table = report_io.outcome_table(report)
    assert {key: rec["outcome"] for key, rec in table.items()} == {
        ("ACCUM-1", "cpu"): "passed",
        ("ACCUM-1", "cuda"): "failed",
        ("HOOK-1", "cpu"): "skipped",
    }
    assert report_io.torch_version(report) == "2.9.1"
    assert report_io.report_devices(report) == ["cpu", "cuda"]
    assert list(report_io.clause_index(report)) == ["ACCUM-1", "HOOK-1"]
    assert sorted(["ACCUM-10", "ACCUM-2", "ACCUM-1"], key=report_io.clause_sort_key) == [
        "ACCUM-1",
        "ACCUM-2",
        "ACCUM-10",
    ]


def test_report_tools_do_not_import_torch():
    """The gate job reads reports on a machine without torch; the writer takes the schema constants from report_io.

    Every module of ``conformance.reporting`` (the report builder included: the
    plugin hands it the device status and the environment as data) and
    ``python -m conformance`` import no torch, and nothing of the suite above
    them (the plugin, devices, specs; only the benchmark ratios, for ``ratios``).
    """
    probe = "\n".join(
        [
            "import importlib, pkgutil, sys",
            "import conformance.reporting as reporting",
            "names = [m.name for m in pkgutil.iter_modules(reporting.__path__, 'conformance.reporting.')]",
            "assert 'conformance.reporting.report' in names, names",
            "for name in [*names, 'conformance.__main__']:",
            "    importlib.import_module(name)",
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)",
            "above = [m for m in sys.modules if m.startswith('conformance.')",
            "         and not m.startswith(('conformance.reporting', 'conformance.benchmarks')) and m != 'conformance.__main__']",
            "assert not above, sorted(above)",
        ]
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr


def documented_top_level_fields(schema_version: int = 2) -> list[str]:
    """The fields of the schema document's top-level table; for version 1, less those marked *(version 2)*."""
    section = SCHEMA_DOC.read_text(encoding="utf-8").split("## Top level", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \|[^|]*\|(.*)$", section, flags=re.MULTILINE)
    return [name for name, meaning in rows if schema_version >= 2 or "*(version 2)*" not in meaning]


@pytest.mark.parametrize("source", ["builder", "compiled builder", "old.json", "new.json", "compiled.json"])
def test_fixtures_have_every_documented_top_level_field(source):
    if source == "builder":
        report = valid()
    elif source == "compiled builder":
        report = compiled_report({"ACCUM-1": {"eager": "passed", "compile:aot_eager": "not compiled"}})
    else:
        report = load_report(FIXTURES / source)
    fields = documented_top_level_fields(report["schema_version"])
    assert "clauses" in fields
    assert ("modes" in fields) == (report["schema_version"] == 2)
    assert set(fields) <= set(report)


# ----------------------------------------------------------------------------- summary


def summary_report() -> dict:
    return make_report(
        torch="2.13.0+cpu",
        devices=["cpu"],
        hypothesis_seed="1234",
        clauses=[
            clause("ACCUM-1", ".grad is None before the first backward", basis="documented", cpu="passed"),
            clause(
                "ACCUM-2",
                "Each backward adds to .grad",
                basis="observed",
                cpu=record("failed", "AssertionError: assert 3.0 == 4.0", tests=["t.py::test_adds[cpu]", "t.py::b"]),
            ),
            clause(
                "ACCUM-10",
                "grad() does not accumulate",
                basis="documented",
                cpu=record("known failure", "pytorch/pytorch#1: bug"),
            ),
            clause("HOOK-1", "Hooks see the gradient", basis="deprecated", cpu="passed"),
            clause("HOOK-2", "A clause nobody tests on cpu", basis="documented"),
            clause("LEAF-1", "Only for old torch", basis="documented", cpu=record("not applicable", "applies to <2.0")),
            clause("LEAF-2", "Skipped here", basis="documented", cpu=record("skipped", "needs numpy")),
        ],
    )


@pytest.fixture
def summary_text(tmp_path, capsys) -> str:
    status, out, err = run_cli(capsys, "summary", write_report(tmp_path, "r.json", summary_report()))
    assert (status, err) == (0, "")
    return out


def test_summary_heading_describes_the_environment(summary_text):
    heading = summary_text.split("**Verdict")[0]
    assert heading.startswith("## Autograd conformance: torch 2.13.0+cpu (CPU build)\n")
    assert "- **torch**: 2.13.0+cpu, CPU build, git `0123456789ab`\n" in heading
    assert "**Python**: 3.11.7 (CPython) on Linux-6.1-x86\\_64-with-glibc2.36" in heading
    assert "**Suite**: 0.1.0" in heading
    assert "**Hypothesis**: profile `ci`, seed `1234`, derandomized" in heading


def test_summary_names_the_cuda_build_and_a_random_seed(tmp_path, capsys):
    report = make_report(
        torch="2.15.0+cu128", torch_cuda="12.8", cudnn=91000, hypothesis_derandomize=False, clauses=[clause("ACCUM-1")]
    )
    _, out, _ = run_cli(capsys, "summary", write_report(tmp_path, "r.json", report))
    assert out.startswith("## Autograd conformance: torch 2.15.0+cu128 (CUDA 12.8, cuDNN 91000)\n")
    assert "- **Hypothesis**: profile `ci`, random seed (hypothesis 6.100.0)\n" in out


def test_summary_verdict_line_counts_outcomes_per_device(summary_text):
    assert "\n**Verdict: violated** — cpu: 1 failed, 1 known failure, 1 skipped, 1 not applicable, 2 passed\n" in (
        summary_text
    )


def test_summary_verdict_conforms(tmp_path, capsys):
    report = make_report(clauses=[clause("ACCUM-1", cpu="passed"), clause("ACCUM-2", cpu="known failure")])
    _, out, _ = run_cli(capsys, "summary", write_report(tmp_path, "r.json", report))
    assert "**Verdict: conforms** — cpu: 1 known failure, 1 passed\n" in out


def test_summary_table_has_a_row_per_clause_with_basis_and_outcome_cells(summary_text):
    assert header_row(summary_text) == ["clause", "title", "basis", "cpu"]
    assert table_row(summary_text, "ACCUM-1") == [
        "ACCUM-1",
        ".grad is None before the first backward",
        "documented",
        "✅ passed",
    ]
    assert table_row(summary_text, "ACCUM-2")[2:] == ["observed", "❌ failed"]
    assert table_row(summary_text, "ACCUM-10")[3] == "⚠️ known failure"
    assert table_row(summary_text, "HOOK-1")[2] == "deprecated"
    assert table_row(summary_text, "HOOK-2")[3] == ""  # no entry for the device: empty cell
    assert table_row(summary_text, "LEAF-1")[3] == "➖ n/a"
    assert table_row(summary_text, "LEAF-2")[3] == "⏭️ skipped"


def test_summary_explains_and_counts_the_bases(summary_text):
    assert (
        "Basis: documented: a docs sentence states it · observed: no docs sentence states it · "
        "deprecated: the docs say this API is deprecated or will change.\n"
    ) in summary_text
    assert "\nClauses by basis: 5 documented, 1 observed, 1 deprecated.\n" in summary_text


def test_summary_of_a_report_without_bases_has_no_basis_column(tmp_path, capsys):
    """Reports written before clauses carried a basis (docs/reports/) still read, without the column."""
    report = make_report(clauses=[clause("ACCUM-1", cpu="passed")])
    _, out, _ = run_cli(capsys, "summary", write_report(tmp_path, "r.json", report))
    assert header_row(out) == ["clause", "title", "cpu"]
    assert "Basis:" not in out and "Clauses by basis" not in out


def test_summary_groups_rows_by_area_in_spec_order(summary_text):
    sections = re.findall(r"^### (.+)$", summary_text, flags=re.MULTILINE)
    assert sections == ["accumulation", "hooks", "leaves", "Failures"]
    accumulation = summary_text.split("### accumulation")[1].split("### hooks")[0]
    assert [line.split(" | ")[0] for line in accumulation.splitlines() if line.startswith("| ACCUM")] == [
        "| ACCUM-1",
        "| ACCUM-2",
        "| ACCUM-10",
    ]


def test_summary_failures_section_lists_message_reason_and_first_test(summary_text):
    failures = summary_text.split("### Failures")[1].strip().splitlines()
    assert failures == [
        (
            "- ❌ failed: **ACCUM-2** on cpu (observed: no docs sentence states it) — Each backward adds to .grad; "
            "message: `AssertionError: assert 3.0 == 4.0`; first test: `t.py::test_adds[cpu]`"
        ),
        (
            "- ⚠️ known failure: **ACCUM-10** on cpu — grad() does not accumulate; "
            "reason: `pytorch/pytorch#1: bug`; first test: `conformance/tests/test_x.py::test_it[cpu]`"
        ),
    ]


def test_summary_says_when_nothing_failed(tmp_path, capsys):
    _, out, _ = run_cli(capsys, "summary", write_report(tmp_path, "r.json", valid()))
    assert out.rstrip().endswith("### Failures\n\nNone: no clause failed, and none is a known failure.")


def test_summary_gives_no_column_to_a_device_where_everything_was_skipped(tmp_path, capsys):
    report = make_report(devices=["cpu", "cuda"], clauses=[clause("ACCUM-1", cpu="passed")])
    absent_device(report, "cuda", "no CUDA device")
    _, out, _ = run_cli(capsys, "summary", write_report(tmp_path, "r.json", report))
    assert header_row(out) == ["clause", "title", "cpu"]
    assert "*Every clause was skipped on cuda (no CUDA device): no column for it.*" in out
    assert "— cpu: 1 passed; cuda: 1 skipped" in out
    assert "cuda: not available (no CUDA device)" in out


def test_summary_has_a_column_per_device_with_outcomes(tmp_path, capsys):
    report = make_report(devices=["cpu", "cuda"], clauses=[clause("ACCUM-1", cpu="passed", cuda="failed")])
    _, out, _ = run_cli(capsys, "summary", write_report(tmp_path, "r.json", report))
    assert table_row(out, "ACCUM-1") == ["ACCUM-1", "title of ACCUM-1", "✅ passed", "❌ failed"]


def test_summary_escapes_markdown_in_titles_and_messages(tmp_path, capsys):
    report = make_report(clauses=[clause("ACCUM-1", "a | b is *not* <tensor>", cpu=record("failed", "assert `x` | y"))])
    _, out, _ = run_cli(capsys, "summary", write_report(tmp_path, "r.json", report))
    assert table_row(out, "ACCUM-1") == ["ACCUM-1", r"a \| b is \*not\* \<tensor\>", "❌ failed"]
    assert r"message: ``assert `x` \| y``" in out


# ----------------------------------------------------------------------------- summary: compiled modes (schema 2)

AOT = "compile:aot_eager"
CPU_AOT = f"cpu@{AOT}"
CUDA_AOT = f"cuda@{AOT}"
GRAPH_BREAK = "graph break: Tensor.backward() inside the compiled function"
NOT_COMPILABLE = "HOOK-2 is not applicable in compiled modes: the hook is traced away"


def compiled_summary_report() -> dict:
    """cpu and cuda, each eager and compiled with aot_eager."""
    return make_report(
        devices=["cpu", "cuda"],
        modes=["eager", AOT],
        clauses=[
            clause("ACCUM-1", cpu="passed", cuda="passed", targets={CPU_AOT: "passed", CUDA_AOT: "passed"}),
            clause(
                "ACCUM-2",
                "Each backward adds to .grad",
                cpu="passed",
                cuda="passed",
                targets={
                    CPU_AOT: record("not compiled", GRAPH_BREAK, tests=["t.py::test_adds[cpu-compile:aot_eager]"]),
                    CUDA_AOT: record("failed", "AssertionError: boom"),
                },
            ),
            clause(
                "HOOK-2",
                "A hook sees the gradient",
                cpu="passed",
                cuda="passed",
                targets={
                    CPU_AOT: record("not applicable", NOT_COMPILABLE),
                    CUDA_AOT: record("not applicable", NOT_COMPILABLE),
                },
            ),
            clause(
                "LEAF-1",
                cpu=record("not applicable", "applies to <2.0"),
                targets={CPU_AOT: record("not applicable", "applies to <2.0")},
            ),
        ],
    )


@pytest.fixture
def compiled_summary(tmp_path, capsys) -> str:
    status, out, err = run_cli(capsys, "summary", write_report(tmp_path, "r.json", compiled_summary_report()))
    assert (status, err) == (0, "")
    return out


def test_summary_has_a_column_per_target_each_devices_modes_side_by_side(compiled_summary):
    assert header_row(compiled_summary) == [
        "clause",
        "title",
        "cpu",
        r"cpu@compile:aot\_eager",
        "cuda",
        r"cuda@compile:aot\_eager",
    ]
    assert table_row(compiled_summary, "ACCUM-2")[2:] == ["✅ passed", "🔁 not compiled", "✅ passed", "❌ failed"]
    assert table_row(compiled_summary, "HOOK-2")[2:] == ["✅ passed", "➖ n/a", "✅ passed", "➖ n/a"]


def test_summary_heading_names_the_modes_and_each_device_once(compiled_summary):
    assert "- **Devices**: cpu (x86\\_64), cuda\n" in compiled_summary
    assert "- **Modes**: eager, compile:aot\\_eager\n" in compiled_summary


def test_summary_of_a_schema_1_report_names_the_eager_mode(tmp_path, capsys):
    _, out, _ = run_cli(capsys, "summary", write_report(tmp_path, "r.json", valid()))
    assert "- **Modes**: eager\n" in out
    assert "not compiled" not in out  # neither in the legend nor as a section


def test_summary_verdict_line_counts_outcomes_per_target(compiled_summary):
    assert (
        "**Verdict: violated** — cpu: 1 not applicable, 3 passed; cuda: 3 passed; "
        "cpu@compile:aot\\_eager: 1 not compiled, 2 not applicable, 1 passed; "
        "cuda@compile:aot\\_eager: 1 failed, 1 not applicable, 1 passed\n"
    ) in compiled_summary


def test_summary_legend_explains_not_compiled_only_for_compiled_runs(compiled_summary, tmp_path, capsys):
    assert "Legend: ❌ failed · ⚠️ known failure · 🔁 not compiled · ⏭️ skipped · " in compiled_summary
    eager_run = make_report(modes=["eager"], clauses=[clause("ACCUM-1", cpu="passed")])  # schema 2, eager only
    _, eager, _ = run_cli(capsys, "summary", write_report(tmp_path, "e.json", eager_run))
    assert "Legend: ❌ failed · ⚠️ known failure · ⏭️ skipped · " in eager
    assert "- **Modes**: eager\n" in eager and "### Not compiled" not in eager


def test_summary_lists_not_compiled_clauses_with_their_reason(compiled_summary):
    section = compiled_summary.split("### Not compiled")[1].split("###")[0]
    bullets = [line for line in section.splitlines() if line.startswith("- ")]
    assert bullets == [
        f"- 🔁 not compiled: **ACCUM-2** on cpu@compile:aot\\_eager — Each backward adds to .grad; "
        f"reason: `{GRAPH_BREAK}`; first test: `t.py::test_adds[cpu-compile:aot_eager]`"
    ]
    failures = compiled_summary.split("### Failures")[1].split("###")[0]
    assert (
        "- ❌ failed: **ACCUM-2** on cuda@compile:aot\\_eager — Each backward adds to .grad; "
        "message: `AssertionError: boom`"
    ) in failures


def test_summary_lists_clauses_not_applicable_when_compiled_but_not_those_out_of_version_range(compiled_summary):
    section = compiled_summary.split("### Not applicable when compiled")[1]
    assert [line for line in section.splitlines() if line.startswith("- ")] == [
        f"- ➖ not applicable: **HOOK-2** in compile:aot\\_eager — A hook sees the gradient; reason: `{NOT_COMPILABLE}`"
    ]
    assert "LEAF-1" not in section  # not applicable in every mode: its version range


def test_summary_of_a_compiled_run_that_compiled_everything_says_so(tmp_path, capsys):
    report = compiled_report({"ACCUM-1": {"eager": "passed", AOT: "passed"}})
    _, out, _ = run_cli(capsys, "summary", write_report(tmp_path, "r.json", report))
    assert "### Not compiled\n\nNone: every compiled pass ran compiled code.\n" in out
    assert "Not applicable when compiled" not in out


def test_summary_gives_no_column_to_the_targets_of_an_absent_device(tmp_path, capsys):
    report = make_report(
        devices=["cpu", "cuda"], modes=["eager", AOT], clauses=[clause("ACCUM-1", cpu="passed", targets={CPU_AOT: "passed"})]
    )
    absent_device(report, "cuda", "no CUDA device")
    _, out, _ = run_cli(capsys, "summary", write_report(tmp_path, "r.json", report))
    assert header_row(out) == ["clause", "title", "cpu", r"cpu@compile:aot\_eager"]
    assert "*Every clause was skipped on cuda, cuda@compile:aot\\_eager (no CUDA device): no column for them.*" in out


def test_report_io_reads_targets_and_modes_of_both_schema_versions():
    v2 = compiled_summary_report()
    assert report_io.report_devices(v2) == ["cpu", "cuda", CPU_AOT, CUDA_AOT]
    assert report_io.report_modes(v2) == ["eager", AOT]
    assert report_io.report_modes(valid()) == ["eager"]  # schema 1: eager only
    assert report_io.targets_by_device(report_io.report_devices(v2), [AOT]) == ["cpu", CPU_AOT, "cuda", CUDA_AOT]
    assert report_io.targets_by_device(["cuda", "cpu"]) == ["cuda", "cpu"]  # eager targets keep their order
    assert report_io.split_target(CUDA_AOT) == ("cuda", AOT) and report_io.split_target("cpu") == ("cpu", "eager")
    assert report_io.target_name("cpu", AOT) == CPU_AOT and report_io.target_name("cpu") == "cpu"
    assert report_io.outcome_table(v2)["ACCUM-2", CPU_AOT] == {
        "outcome": "not compiled",
        "reason": GRAPH_BREAK,
        "message": "",
        "tests": ["t.py::test_adds[cpu-compile:aot_eager]"],
        "device": "cpu",
        "mode": AOT,
    }


def test_the_compiled_fixture_file_reads_with_every_command(capsys):
    compiled, old = str(FIXTURES / "compiled.json"), str(FIXTURES / "old.json")
    status, out, err = run_cli(capsys, "summary", compiled)
    assert (status, err) == (0, "")
    assert table_row(out, "ACCUM-2")[2:] == ["✅ passed", "🔁 not compiled", "❌ failed", "❌ failed"]
    status, out, err = run_cli(capsys, "matrix", old, compiled)
    assert (status, err) == (0, "")
    assert header_row(out)[2:] == [
        "1.13.1+cu117 · cpu",
        "1.13.1+cu117 · cuda",
        "2.15.0+cu128 · cpu",
        r"2.15.0+cu128 · cpu · compile:aot\_eager",
        "2.15.0+cu128 · cuda",
        r"2.15.0+cu128 · cuda · compile:aot\_eager",
    ]
    status, out, err = run_cli(capsys, "diff", old, compiled)  # schema 1 against schema 2: the eager targets
    assert (status, err) == (1, "")
    assert out.startswith("torch 1.13.1+cu117 → torch 2.15.0+cu128 on cpu, cuda: 1 regression,")
    assert "Mode only in NEW, not compared: compile:aot_eager." in out


# ----------------------------------------------------------------------------- matrix


def versioned(torch: str, *, devices=("cpu",), **outcomes: str) -> dict:
    """A report for ``torch`` with ACCUM-1 (and more clauses as keywords: ``HOOK_1="failed"``) on its devices."""
    clauses = [clause("ACCUM-1", **{d: "passed" for d in devices})]
    clauses += [clause(cid.replace("_", "-"), **{d: outcome for d in devices}) for cid, outcome in outcomes.items()]
    return make_report(torch=torch, devices=devices, clauses=clauses)


def test_matrix_columns_are_sorted_by_version_not_text(tmp_path, capsys):
    paths = [write_report(tmp_path, f"{v}.json", versioned(v)) for v in ("2.10.0", "1.13.1+cu117", "2.9.1", "2.0.1")]
    status, out, err = run_cli(capsys, "matrix", *paths)
    assert (status, err) == (0, "")
    assert header_row(out) == ["clause", "title", "1.13.1+cu117", "2.0.1", "2.9.1", "2.10.0"]


def test_matrix_labels_columns_with_the_device_when_a_report_has_several(tmp_path, capsys):
    two = write_report(tmp_path, "two.json", versioned("2.13.0+cu121", devices=["cpu", "cuda"]))
    one = write_report(tmp_path, "one.json", versioned("2.9.1"))
    _, out, _ = run_cli(capsys, "matrix", two, one)
    assert header_row(out)[2:] == ["2.9.1 · cpu", "2.13.0+cu121 · cpu", "2.13.0+cu121 · cuda"]


def test_matrix_omits_devices_where_every_clause_was_skipped(tmp_path, capsys):
    report = versioned("2.13.0+cpu", devices=["cpu"])
    report["devices"].append("cuda")
    absent_device(report, "cuda", "no CUDA device")
    _, out, _ = run_cli(capsys, "matrix", write_report(tmp_path, "r.json", report))
    assert header_row(out)[2:] == ["2.13.0+cpu"]
    assert "cpu (every clause skipped on cuda: not shown)" in out


def test_matrix_same_version_on_different_devices_is_fine(tmp_path, capsys):
    cpu = write_report(tmp_path, "cpu.json", versioned("2.13.0"))
    cuda = write_report(tmp_path, "cuda.json", versioned("2.13.0", devices=["cuda"]))
    status, out, _ = run_cli(capsys, "matrix", cpu, cuda)
    assert status == 0
    assert header_row(out)[2:] == ["2.13.0 · cpu", "2.13.0 · cuda"]


def test_matrix_refuses_two_reports_of_the_same_version_and_device(tmp_path, capsys):
    first = write_report(tmp_path, "first.json", versioned("2.13.0+cpu"))
    other = write_report(tmp_path, "other.json", versioned("2.9.1"))
    second = write_report(tmp_path, "second.json", versioned("2.13.0+cpu"))
    status, out, err = run_cli(capsys, "matrix", first, other, second)
    assert (status, out) == (2, "")
    assert err == (
        f"error: {first} and {second} both report torch 2.13.0+cpu on cpu; "
        "expected at most one report per torch version and device\n"
    )


def test_matrix_rows_are_the_union_of_clauses_by_area_and_number(tmp_path, capsys):
    old = make_report(torch="1.13.1", clauses=[clause("ACCUM-2", cpu="failed"), clause("DETACH-1", cpu="passed")])
    new = make_report(
        torch="2.15.0",
        clauses=[
            clause("ACCUM-10", cpu="passed"),
            clause("ACCUM-2", cpu="passed"),
            clause("HOOK-1", cpu=record("not applicable")),
        ],
    )
    paths = [write_report(tmp_path, "old.json", old), write_report(tmp_path, "new.json", new)]
    _, out, _ = run_cli(capsys, "matrix", *paths)
    rows = [line.split(" | ")[0][2:] for line in out.split("| clause |")[1].splitlines()[2:]]
    assert rows[: rows.index("**totals**")] == [
        "**accumulation**",
        "ACCUM-2",
        "ACCUM-10",
        "**hooks**",
        "HOOK-1",
        "**detach**",  # only in the older report: after the newest report's areas
        "DETACH-1",
    ]
    assert table_row(out, "ACCUM-2")[2:] == ["❌", "✅"]
    assert table_row(out, "ACCUM-10")[2:] == ["", "✅"]
    assert table_row(out, "HOOK-1")[2:] == ["", "➖"]
    assert table_row(out, "DETACH-1")[2:] == ["✅", ""]


def test_matrix_has_totals_legend_and_environments(tmp_path, capsys):
    old = versioned("2.9.1", HOOK_1="failed", HOOK_2="failed")
    new = versioned("2.10.0", HOOK_1="passed", HOOK_2="known failure")
    paths = [write_report(tmp_path, "new.json", new), write_report(tmp_path, "old.json", old)]
    _, out, _ = run_cli(capsys, "matrix", *paths)
    assert table_row(out, "✅ passed")[2:] == ["1", "2"]
    assert table_row(out, "❌ failed")[2:] == ["2", "0"]
    assert table_row(out, "⚠️ known failure")[2:] == ["0", "1"]
    assert "| ➖ not applicable |" not in out  # no such outcome anywhere: no totals row
    assert "Legend: ❌ failed · ⚠️ known failure · ⏭️ skipped · ❔ untested · ➖ not applicable · ✅ passed" in out
    environments = out.split("| torch | git |")[1].split("\n\n")[0]
    assert environments.index("| 2.9.1 |") < environments.index("| 2.10.0 |")
    assert f"`{paths[1]}`" in table_row(out, "2.9.1")[-1]
    assert table_row(out, "2.9.1")[1:5] == ["`0123456789ab`", "CPU build", "3.11.7", "ci"]


def test_matrix_html_is_a_self_contained_page_with_coloured_cells(tmp_path, capsys):
    paths = [
        write_report(tmp_path, "a.json", versioned("2.9.1", HOOK_1="failed")),
        write_report(tmp_path, "b.json", versioned("2.10.0", HOOK_1="passed")),
    ]
    status, out, _ = run_cli(capsys, "matrix", "--format", "html", *paths)
    assert status == 0
    assert out.startswith("<!DOCTYPE html>")
    assert "<style>" in out and "td.o-failed { background:" in out
    assert not re.search(r"(src|href)=", out)  # nothing to fetch
    assert out.index("<th>2.9.1</th>") < out.index("<th>2.10.0</th>")
    assert '<td class="cell o-failed" title="failed">❌</td>' in out


# ----------------------------------------------------------------------------- matrix: compiled modes (schema 2)


def compiled_versioned(torch: str, *, devices=("cpu",), modes=("eager", "compile:aot_eager"), **outcomes: str) -> dict:
    """A schema-2 report for ``torch``: ACCUM-1 passes on every target; ``ACCUM_2={"compile:aot_eager": "not
    compiled"}`` gives another clause's outcome per mode (passed where not given)."""
    def targets(per_mode: dict) -> dict:
        return {f"{d}@{m}" if m != "eager" else d: per_mode.get(m, "passed") for m in modes for d in devices}

    clauses = [clause("ACCUM-1", targets=targets({}))]
    clauses += [clause(cid.replace("_", "-"), targets=targets(per_mode)) for cid, per_mode in outcomes.items()]
    return make_report(torch=torch, devices=devices, modes=list(modes), clauses=clauses)


def test_matrix_gives_a_compiled_report_a_column_per_mode(tmp_path, capsys):
    report = compiled_versioned("2.13.0", ACCUM_2={"compile:aot_eager": "not compiled"})
    status, out, err = run_cli(capsys, "matrix", write_report(tmp_path, "r.json", report))
    assert (status, err) == (0, "")
    assert header_row(out)[2:] == ["2.13.0", r"2.13.0 · compile:aot\_eager"]
    assert table_row(out, "ACCUM-2")[2:] == ["✅", "🔁"]
    assert table_row(out, "🔁 not compiled")[2:] == ["0", "1"]
    assert "Legend: ❌ failed · ⚠️ known failure · 🔁 not compiled · ⏭️ skipped" in out
    assert (
        "1 report, 2 columns, 2 clauses; columns sorted by torch version; "
        "a device's compiled modes beside its eager column."
    ) in out
    assert table_row(out, "2.13.0")[5] == r"cpu, cpu@compile:aot\_eager"  # the environments' devices column


def test_matrix_puts_each_devices_modes_side_by_side(tmp_path, capsys):
    report = compiled_versioned("2.13.0", devices=("cpu", "cuda"), modes=("eager", "compile:aot_eager", "compile:inductor"))
    _, out, _ = run_cli(capsys, "matrix", write_report(tmp_path, "r.json", report))
    assert header_row(out)[2:] == [
        "2.13.0 · cpu",
        r"2.13.0 · cpu · compile:aot\_eager",
        "2.13.0 · cpu · compile:inductor",
        "2.13.0 · cuda",
        r"2.13.0 · cuda · compile:aot\_eager",
        "2.13.0 · cuda · compile:inductor",
    ]


def test_matrix_modes_option_keeps_those_modes_columns(tmp_path, capsys):
    compiled = write_report(
        tmp_path, "c.json", compiled_versioned("2.13.0", ACCUM_2={"compile:aot_eager": "not compiled"})
    )
    eager_only = write_report(tmp_path, "e.json", versioned("2.9.1"))
    _, out, _ = run_cli(capsys, "matrix", "--modes", "compile:aot_eager", compiled, eager_only)
    assert header_row(out)[2:] == [r"2.13.0 · compile:aot\_eager"]  # the eager-only report has no such column
    assert "1 report, 1 column, 2 clauses; columns sorted by torch version.\n" in out
    _, out, _ = run_cli(capsys, "matrix", "--modes", "eager", compiled, eager_only)
    assert header_row(out)[2:] == ["2.9.1", "2.13.0"]
    assert "not compiled" not in out  # eager columns only: the legend of an eager matrix
    _, both, _ = run_cli(capsys, "matrix", "--modes", "eager", "--modes", "compile:aot_eager", compiled)
    _, default, _ = run_cli(capsys, "matrix", compiled)
    assert both == default


def test_matrix_modes_option_refuses_a_mode_no_report_has(tmp_path, capsys):
    path = write_report(tmp_path, "c.json", compiled_versioned("2.13.0"))
    status, out, err = run_cli(capsys, "matrix", "--modes", "compile:inductor", path)
    assert (status, out) == (2, "")
    assert err == (
        "error: no report has a target in mode 'compile:inductor'; "
        "expected a mode of the reports (eager, compile:aot_eager)\n"
    )
    status, _, err = run_cli(capsys, "matrix", "--modes", ",", path)
    assert status == 2 and err.startswith("error: --modes names no mode")


def test_matrix_refuses_two_reports_of_the_same_version_device_and_mode(tmp_path, capsys):
    first = write_report(tmp_path, "first.json", compiled_versioned("2.13.0"))
    second = write_report(tmp_path, "second.json", compiled_versioned("2.13.0", modes=("compile:aot_eager",)))
    status, out, err = run_cli(capsys, "matrix", first, second)
    assert (status, out) == (2, "")
    assert err == (
        f"error: {first} and {second} both report torch 2.13.0 on cpu in compile:aot_eager; "
        "expected at most one report per torch version and device and mode\n"
    )


def test_matrix_of_eager_and_compiled_runs_of_one_version_in_two_reports(tmp_path, capsys):
    eager = write_report(tmp_path, "e.json", versioned("2.13.0"))
    compiled = write_report(tmp_path, "c.json", compiled_versioned("2.13.0", modes=("compile:inductor",)))
    status, out, _ = run_cli(capsys, "matrix", eager, compiled)
    assert status == 0
    assert header_row(out)[2:] == ["2.13.0 · cpu", "2.13.0 · cpu · compile:inductor"]


def test_matrix_html_colours_not_compiled_cells_only_when_a_compiled_mode_is_shown(tmp_path, capsys):
    compiled = write_report(tmp_path, "c.json", compiled_versioned("2.13.0", ACCUM_2={"compile:aot_eager": "not compiled"}))
    _, out, _ = run_cli(capsys, "matrix", "--format", "html", compiled)
    assert "td.o-not-compiled { background:" in out
    assert "<th>2.13.0 · compile:aot_eager</th>" in out
    assert '<td class="cell o-not-compiled" title="not compiled">🔁</td>' in out
    assert "🔁 not compiled" in out.split("<p>")[1].split("</p>")[0]
    _, eager, _ = run_cli(capsys, "matrix", "--format", "html", write_report(tmp_path, "e.json", versioned("2.9.1")))
    assert "not compiled" not in eager and "o-not-compiled" not in eager


# ----------------------------------------------------------------------------- command line plumbing


def test_output_option_writes_the_file_atomically_and_prints_nothing(tmp_path, capsys):
    target = tmp_path / "out" / "nested" / "summary.md"
    status, out, err = run_cli(capsys, "summary", str(FIXTURES / "new.json"), "-o", str(target))
    assert (status, out, err) == (0, "", "")
    assert target.read_text(encoding="utf-8").startswith("## Autograd conformance: torch 2.15.0+cu128 (CUDA 12.8")
    assert [p.name for p in target.parent.iterdir()] == ["summary.md"]  # no temporary file left behind


def test_output_option_replaces_an_existing_file(tmp_path, capsys):
    target = tmp_path / "matrix.md"
    target.write_text("stale\n", encoding="utf-8")
    assert main(["matrix", str(FIXTURES / "old.json"), "--output", str(target)]) == 0
    assert "stale" not in target.read_text(encoding="utf-8")


def test_unwritable_output_is_an_error(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    status, out, err = run_cli(capsys, "summary", str(FIXTURES / "new.json"), "-o", str(blocker / "x.md"))
    assert (status, out) == (2, "")
    assert err.startswith(f"error: {blocker / 'x.md'}: cannot write the output")


def test_usage_errors_and_help(capsys):
    status, _, err = run_cli(capsys)
    assert status == 2
    assert "usage: python -m conformance" in err
    status, out, _ = run_cli(capsys, "--help")
    assert status == 0
    assert "{summary,diff,matrix}" in out or all(cmd in out for cmd in ("summary", "diff", "matrix"))
    status, _, err = run_cli(capsys, "matrix", "--format", "pdf", str(FIXTURES / "new.json"))
    assert status == 2
    assert "invalid choice: 'pdf'" in err


def test_python_dash_m_conformance_runs_the_tools(tmp_path):
    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "conformance", *argv],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            encoding="utf-8",
            check=False,
        )

    summary = run("summary", str(FIXTURES / "old.json"))
    assert summary.returncode == 0, summary.stderr
    assert summary.stdout.startswith("## Autograd conformance: torch 1.13.1+cu117")
    diff = run("diff", str(FIXTURES / "old.json"), str(FIXTURES / "new.json"))
    assert diff.returncode == 1, diff.stderr
    assert diff.stdout.startswith("torch 1.13.1+cu117 → torch 2.15.0+cu128 on cpu, cuda: 1 regression")
    bad = run("matrix", str(FIXTURES / "not-json.json"))
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


# ----------------------------------------------------------------------------- against the real writer


@pytest.fixture
def _keep_outer_hypothesis_profile():
    """The in-process run below loads a hypothesis profile globally; put ours back afterwards."""
    name = hypothesis.settings.get_current_profile_name()
    yield
    hypothesis.settings.load_profile(name)


SPEC = """\
# Test area

## PASS-1: holds

> A normative sentence.

- **Source**: <https://pytorch.org/docs/stable/autograd.html>
- **Versions**: `>=1.13`
- **Basis**: `documented`

```python
pass
```

## FAIL-1: is violated

> Another normative sentence.

- **Source**: <https://pytorch.org/docs/stable/autograd.html>
- **Versions**: `>=1.13`
- **Basis**: `documented`

```python
pass
```
"""

TESTS = """\
import pytest

@pytest.mark.spec("PASS-1")
def test_holds(device):
    pass

@pytest.mark.spec("FAIL-1")
def test_violated(device):
    assert 1 == 2, "one is not two"
"""


@pytest.mark.usefixtures("_keep_outer_hypothesis_profile")
def test_reports_written_by_the_plugin_are_read_by_the_tools(pytester, monkeypatch, capsys):
    monkeypatch.delenv("CONFORMANCE_PROFILE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    pytester.makeini("[pytest]\nconformance_testpaths = .\n")
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "area.md").write_text(SPEC, encoding="utf-8")
    pytester.makepyfile(test_conformance=textwrap.dedent(TESTS))
    pytester.runpytest("-p", "conformance.plugin", "--specs-dir=specs", "--device=cpu", "--conformance-report=r.json")
    capsys.readouterr()
    path = str(pytester.path / "r.json")
    report = load_report(path)
    assert json.loads(Path(path).read_text(encoding="utf-8"))["verdict"] == "violated"
    status, out, err = run_cli(capsys, "summary", path)
    assert (status, err) == (0, "")
    assert table_row(out, "PASS-1")[2:] == ["documented", "✅ passed"]
    assert table_row(out, "FAIL-1")[2:] == ["documented", "❌ failed"]
    assert "message: `AssertionError: one is not two" in out
    assert run_cli(capsys, "diff", path, path)[0] == 0
    assert report_io.outcome_table(report)["FAIL-1", "cpu"]["tests"] == ["test_conformance.py::test_violated[cpu]"]


@pytest.mark.usefixtures("_keep_outer_hypothesis_profile")
def test_compiled_mode_reports_written_by_the_plugin_are_read_by_the_tools(pytester, monkeypatch, capsys):
    """A schema-2 report of ``--mode eager,compile:eager``: the tests compile nothing, so their compiled passes are
    ``not compiled``, and every tool reads it (summary's columns and section, diff against itself, matrix)."""
    monkeypatch.delenv("CONFORMANCE_PROFILE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    pytester.makeini("[pytest]\nconformance_testpaths = .\n")
    (pytester.path / "specs").mkdir()
    (pytester.path / "specs" / "area.md").write_text(SPEC, encoding="utf-8")
    pytester.makepyfile(test_conformance=textwrap.dedent(TESTS))
    pytester.runpytest(
        "-p", "conformance.plugin", "--specs-dir=specs", "--device=cpu", "--mode=eager,compile:eager",
        "--conformance-report=r.json",
    )
    capsys.readouterr()
    path = str(pytester.path / "r.json")
    report = load_report(path)
    assert (report["schema_version"], report["modes"]) == (2, ["eager", "compile:eager"])
    assert report["devices"] == ["cpu", "cpu@compile:eager"]
    status, out, err = run_cli(capsys, "summary", path)
    assert (status, err) == (0, "")
    assert header_row(out) == ["clause", "title", "basis", "cpu", "cpu@compile:eager"]
    assert table_row(out, "PASS-1")[3:] == ["✅ passed", "🔁 not compiled"]
    assert table_row(out, "FAIL-1")[3:] == ["❌ failed", "❌ failed"]
    assert "- 🔁 not compiled: **PASS-1** on cpu@compile:eager — holds; reason: `" in out
    status, out, err = run_cli(capsys, "diff", path, path)
    assert (status, err) == (0, "")
    assert "2 clause × target pairs failed in both reports" in out
    status, out, err = run_cli(capsys, "matrix", path)
    assert (status, err) == (0, "")
    assert header_row(out)[2:] == [report["environment"]["torch"], f"{report['environment']['torch']} · compile:eager"]


# ----------------------------------------------------------------------------- the committed reports


COMMITTED_REPORTS = sorted((REPO_ROOT / "docs" / "reports").glob("*.json.gz"))


def test_committed_reports_predate_bases_and_still_read(capsys):
    """docs/reports/ was written before clauses carried a basis: every tool still reads those reports."""
    assert COMMITTED_REPORTS
    status, out, err = run_cli(capsys, "matrix", *map(str, COMMITTED_REPORTS))
    assert (status, err) == (0, "")
    assert "## Autograd conformance matrix" in out
    oldest, newest = str(COMMITTED_REPORTS[0]), str(COMMITTED_REPORTS[-1])
    status, out, err = run_cli(capsys, "diff", oldest, newest)
    assert status in (0, 1) and err == ""
    status, out, err = run_cli(capsys, "summary", newest)
    assert (status, err) == (0, "") and "| clause | title |" in out
