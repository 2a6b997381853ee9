"""The pytest plugin (conformance/plugin/__init__.py), driven through ``pytester``.

Each test writes a tiny spec directory and a conformance test module into the
pytester directory and runs pytest on it in-process (fast: torch stays
imported).  The repository's root conftest is not active there, hence
``-p conformance.plugin``.
"""

from __future__ import annotations

import json
import textwrap

import hypothesis
import pytest
import torch

from conformance.plugin.devices import status_in_run
from conformance.plugin.profiles import ENV_VAR, selected_profile
from conformance.reporting.report_io import REPORT_SCHEMA_VERSION

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR

#: Tests that expect cuda and mps to be absent, as on the CPU-only machines this suite's own tests run on.
no_accelerators = pytest.mark.skipif(
    torch.cuda.is_available() or torch.backends.mps.is_available(), reason="an accelerator is present"
)
#: Whether the emulated device runs among the default devices here (it does where no accelerator is and it builds).
EMULATED_BY_DEFAULT = status_in_run("emu", explicit=False).available


def clause_md(
    clause_id: str,
    title: str = "a clause",
    versions: str = ">=1.13",
    basis: str = "documented",
    *,
    basis_note: str = "",
    compiled: str = "",
) -> str:
    """One clause of a spec file, as the suite's own tests write them (``compiled``: the reason of a
    ``Compiled: not applicable`` field)."""
    note = f" — {basis_note}" if basis_note else ""
    compiled_field = f"\n- **Compiled**: `not applicable` — {compiled}" if compiled else ""
    return (
        f"## {clause_id}: {title}\n\n> A normative sentence.\n\n"
        f"- **Source**: <https://pytorch.org/docs/stable/autograd.html>\n"
        f"- **Versions**: `{versions}`\n- **Basis**: `{basis}`{note}{compiled_field}\n\n"
        "```python\npass\n```\n"
    )


#: The clauses every suite below starts with.
DEFAULT_CLAUSES = (
    clause_md("PASS-1", "holds"),
    clause_md("FAIL-1", "is violated"),
    clause_md("OLD-1", "only for ancient torch", versions="<1.0"),
    clause_md("UNCITED-1", "nobody tests this"),
)


class Suite:
    """A throwaway conformance suite: ``specs/`` plus test modules in the pytester directory."""

    def __init__(self, pytester: pytest.Pytester):
        self.pytester = pytester
        pytester.makeini("[pytest]\nconformance_testpaths = .\n")
        self.write_specs(*DEFAULT_CLAUSES)

    def write_specs(self, *clauses: str, name: str = "area.md", area: str = "# Test area") -> None:
        specs = self.pytester.path / "specs"
        specs.mkdir(exist_ok=True)
        (specs / name).write_text(area + "\n\n" + "\n".join(clauses), encoding="utf-8")

    def write_tests(self, source: str, name: str = "test_conformance") -> None:
        self.pytester.makepyfile(**{name: "import pytest\nimport torch\n" + textwrap.dedent(source)})

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest("-p", "conformance.plugin", "--specs-dir=specs", "-rs", *args)


@pytest.fixture(autouse=True)
def _keep_outer_hypothesis_profile():
    """In-process runs load a hypothesis profile globally; put ours back afterwards."""
    name = hypothesis.settings.get_current_profile_name()
    yield
    hypothesis.settings.load_profile(name)


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Suite:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("CI", raising=False)
    return Suite(pytester)


def run_report(suite: Suite, *args: str) -> tuple[pytest.RunResult, dict]:
    result = suite.run("--conformance-report=out.json", *args)
    report = json.loads((suite.pytester.path / "out.json").read_text(encoding="utf-8"))
    return result, report


def clause_entry(report: dict, clause_id: str) -> dict:
    (entry,) = [c for c in report["clauses"] if c["id"] == clause_id]
    return entry


def cpu_result(report: dict, clause_id: str) -> dict:
    return clause_entry(report, clause_id)["devices"]["cpu"]


# ----------------------------------------------------------------------------- citations

ONE_CITED_ONE_UNCITED = """
@pytest.mark.spec("PASS-1")
def test_cites():
    pass

def test_forgot_to_cite():
    pass
"""


def test_conformance_test_citing_no_clause_is_a_usage_error_naming_it(suite):
    suite.write_tests(ONE_CITED_ONE_UNCITED)
    result = suite.run()
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_conformance.py::test_forgot_to_cite: conformance test cites no clause*"])
    assert "test_cites" not in result.stderr.str()


def test_usage_error_writes_no_report_and_no_outcome_summary(suite):
    """An aborted run must not leave a report that reads as outcomes ("untested") for a CI gate."""
    suite.write_tests(ONE_CITED_ONE_UNCITED)
    result = suite.run("--conformance-report=out.json")
    assert result.ret == USAGE_ERROR
    assert not (suite.pytester.path / "out.json").exists()
    assert "clauses on torch" not in result.stdout.str()


def test_json_report_records_the_exit_status(suite):
    suite.write_tests(
        """
        @pytest.mark.spec("PASS-1")
        def test_holds():
            pass
        """
    )
    result, report = run_report(suite)
    assert result.ret == 0 and report["exit_status"] == 0


def test_citing_an_unknown_clause_is_a_usage_error_naming_the_id(suite):
    suite.write_tests(
        """
        @pytest.mark.spec("PASS-1", "NOSUCH-7")
        def test_cites_unknown():
            pass
        """
    )
    result = suite.run()
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_cites_unknown: cites unknown clause ID(s) NOSUCH-7"])


def test_tests_outside_conformance_testpaths_need_no_citation(suite):
    suite.pytester.makeini("[pytest]\nconformance_testpaths = conformance_dir\n")
    (suite.pytester.path / "conformance_dir").mkdir()
    suite.write_tests("def test_plain():\n    pass\n", name="test_not_conformance")
    suite.run().assert_outcomes(passed=1)


def test_clause_whose_versions_exclude_installed_torch_is_skipped_with_reason(suite):
    suite.write_tests(
        """
        @pytest.mark.spec("OLD-1")
        def test_old_behaviour():
            raise AssertionError("must not run")
        """
    )
    result = suite.run()
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"SKIPPED * OLD-1 applies to torch <1.0, installed torch is {torch.__version__}"])


# ----------------------------------------------------------------------------- devices

DEVICE_TEST = """
    @pytest.mark.spec("PASS-1")
    def test_on_device(device):
        assert torch.ones(2, device=device).sum().item() == 2
    """


def test_device_tests_are_parametrized_over_cpu_cuda_mps_by_default(suite):
    suite.write_tests(DEVICE_TEST)
    result = suite.run("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "test_conformance.py::test_on_device[[]cpu[]]",
            "test_conformance.py::test_on_device[[]cuda[]]",
            "test_conformance.py::test_on_device[[]mps[]]",
        ]
    )


@no_accelerators
def test_absent_default_devices_skip_as_not_available(suite):
    suite.write_tests(DEVICE_TEST)
    result = suite.run()
    result.assert_outcomes(passed=1 + EMULATED_BY_DEFAULT, skipped=2)  # cpu (and emu) pass
    result.stdout.fnmatch_lines_random(["SKIPPED * cuda not available*", "SKIPPED * mps not available*"])


@pytest.mark.parametrize("option", [["--device", "cpu"], ["--device", "cpu,cpu"], ["--device", "cpu", "--device", " cpu "]])
def test_explicit_cpu_runs_only_cpu_once(suite, option):
    suite.write_tests(DEVICE_TEST)
    result = suite.run("-v", *option)
    result.assert_outcomes(passed=1)
    assert "test_on_device[cpu] PASSED" in result.stdout.str()
    assert "[cuda]" not in result.stdout.str() and "[mps]" not in result.stdout.str()


@no_accelerators
def test_explicit_unavailable_device_is_a_usage_error_listing_available_ones(suite):
    suite.write_tests(DEVICE_TEST)
    result = suite.run("--device", "cuda")
    assert result.ret == USAGE_ERROR
    available = "cpu, emu" if EMULATED_BY_DEFAULT else "cpu"
    result.stderr.fnmatch_lines([f"*requested device(s) not available: cuda not available*Available here: {available}"])


# ----------------------------------------------------------------------------- --clause

TWO_CLAUSE_TESTS = """
    @pytest.mark.spec("PASS-1")
    def test_pass_clause():
        pass

    @pytest.mark.spec("FAIL-1")
    def test_fail_clause():
        pass
    """


def test_clause_option_runs_only_tests_citing_it(suite):
    suite.write_tests(TWO_CLAUSE_TESTS)
    result = suite.run("-v", "--clause", "FAIL-1")
    result.assert_outcomes(passed=1, deselected=1)
    assert "test_fail_clause PASSED" in result.stdout.str()
    assert "test_pass_clause" not in result.stdout.str()


def test_clause_option_accepts_a_comma_separated_list(suite):
    suite.write_tests(TWO_CLAUSE_TESTS)
    suite.run("--clause", "FAIL-1,PASS-1").assert_outcomes(passed=2)


def test_unknown_clause_option_is_a_usage_error(suite):
    suite.write_tests(TWO_CLAUSE_TESTS)
    result = suite.run("--clause", "NOSUCH-1")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*--clause names unknown clause ID(s): NOSUCH-1"])


# ----------------------------------------------------------------------------- state guard


@pytest.mark.parametrize(
    "leak, field, still_clean",
    [
        ("torch.set_grad_enabled(False)", "grad_enabled", "torch.is_grad_enabled()"),
        ("torch.set_default_dtype(torch.float64)", "default_dtype", "torch.get_default_dtype() == torch.float32"),
        ("torch.set_anomaly_enabled(True)", "anomaly_enabled", "not torch.is_anomaly_enabled()"),
    ],
    ids=["grad_enabled", "default_dtype", "anomaly_enabled"],
)
def test_state_guard_errors_on_leaked_global_state_and_restores_it(suite, leak, field, still_clean):
    suite.write_tests(
        f"""
        @pytest.mark.spec("PASS-1")
        def test_1_leaks():
            {leak}

        @pytest.mark.spec("PASS-1")
        def test_2_sees_clean_state():
            assert {still_clean}
        """
    )
    result = suite.run()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_1_leaks*", f"*test left global autograd state changed: {field}:*"])


def test_state_guard_accepts_state_restored_by_a_context_manager(suite):
    suite.write_tests(
        """
        @pytest.mark.spec("PASS-1")
        def test_scoped():
            with torch.no_grad():
                assert not torch.is_grad_enabled()
        """
    )
    suite.run().assert_outcomes(passed=1)


# ----------------------------------------------------------------------------- report and summary

REPORT_TESTS = """
    from conformance.testlib.assertions import fail

    @pytest.mark.spec("PASS-1")
    def test_holds(device):
        pass

    @pytest.mark.spec("FAIL-1")
    def test_violated(device):
        fail("FAIL-1", "the thing should hold, but it does not")

    @pytest.mark.spec("OLD-1")
    def test_ancient():
        pass
    """


def test_json_report_has_per_clause_per_device_outcomes(suite):
    suite.write_tests(REPORT_TESTS)
    result, report = run_report(suite, "--device", "cpu")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    assert report["schema_version"] == REPORT_SCHEMA_VERSION
    assert [c["id"] for c in report["clauses"]] == ["PASS-1", "FAIL-1", "OLD-1", "UNCITED-1"]
    assert clause_entry(report, "PASS-1")["devices"]["cpu"]["outcome"] == "passed"
    failed = clause_entry(report, "FAIL-1")["devices"]["cpu"]
    assert failed["outcome"] == "failed"
    assert failed["tests"] == ["test_conformance.py::test_violated[cpu]"]
    assert "FAIL-1 violated: the thing should hold, but it does not" in failed["message"]
    old = clause_entry(report, "OLD-1")
    assert old["applies"] is False and old["versions"] == "<1.0"
    assert cpu_result(report, "OLD-1")["outcome"] == "not applicable"
    assert clause_entry(report, "UNCITED-1")["devices"] == {}
    assert report["environment"]["torch"] == torch.__version__
    assert report["devices"] == ["cpu"]
    assert report["verdict"] == "violated" and report["exit_status"] == 1
    assert report["totals"] == {"cpu": {"failed": 1, "not applicable": 1, "passed": 1}}
    assert {c["id"]: c["basis"] for c in report["clauses"]} == dict.fromkeys(["PASS-1", "FAIL-1", "OLD-1", "UNCITED-1"], "documented")
    assert clause_entry(report, "PASS-1")["basis_note"] == ""


@no_accelerators
def test_json_report_marks_absent_default_devices_skipped(suite):
    suite.write_tests(REPORT_TESTS)
    _, report = run_report(suite)
    devices = clause_entry(report, "PASS-1")["devices"]
    expected = {"cpu": "passed", "cuda": "skipped", "mps": "skipped", "emu": "passed" if EMULATED_BY_DEFAULT else "skipped"}
    assert {name: d["outcome"] for name, d in devices.items()} == expected
    assert "not available" in devices["cuda"]["reason"]
    # device-independent tests count on every device, but nothing ran on an absent one
    assert clause_entry(report, "OLD-1")["devices"]["cuda"]["outcome"] == "not applicable"


def test_json_report_counts_a_teardown_error_as_a_failed_clause(suite):
    suite.write_tests(
        """
        @pytest.mark.spec("PASS-1")
        def test_leaks():
            torch.set_grad_enabled(False)
        """
    )
    _, report = run_report(suite)
    result = cpu_result(report, "PASS-1")
    assert result["outcome"] == "failed"
    assert "grad_enabled" in result["message"]


def test_expected_failure_is_a_known_failure_not_a_pass(suite):
    """An xfail (a known torch defect) must not let the clause read as holding."""
    suite.write_tests(
        """
        @pytest.mark.spec("PASS-1")
        def test_holds():
            pass

        @pytest.mark.spec("PASS-1")
        @pytest.mark.xfail(strict=True, reason="PASS-1 known defect in torch X")
        def test_known_defect():
            assert False
        """
    )
    result, report = run_report(suite)
    assert result.ret == 0
    entry = cpu_result(report, "PASS-1")
    assert entry["outcome"] == "known failure"
    assert "PASS-1 known defect" in entry["reason"]
    result.stdout.fnmatch_lines(["KNOWN FAILURE PASS-1 *known defect in torch X*"])


def test_strict_xfail_that_passes_fails_the_clause(suite):
    """When torch fixes a known defect, the stale expectation surfaces as a failure."""
    suite.write_tests(
        """
        @pytest.mark.spec("PASS-1")
        @pytest.mark.xfail(strict=True, reason="PASS-1 known defect")
        def test_fixed_now():
            pass
        """
    )
    result, report = run_report(suite)
    assert result.ret == 1
    assert cpu_result(report, "PASS-1")["outcome"] == "failed"


def test_json_report_goes_to_a_new_directory(suite):
    suite.write_tests(REPORT_TESTS)
    suite.run("--device", "cpu", "--conformance-report=reports/nested/out.json")
    assert json.loads((suite.pytester.path / "reports/nested/out.json").read_text())["schema_version"] == REPORT_SCHEMA_VERSION


def test_terminal_summary_names_violated_and_uncited_clauses(suite):
    suite.write_tests(REPORT_TESTS)
    result = suite.run("--device", "cpu")
    result.stdout.fnmatch_lines(
        [
            "*autograd conformance*",
            "VIOLATED FAIL-1 [[]cpu[]] is violated (area.md:*)",
            "*FAIL-1 violated: the thing should hold, but it does not",
            "clauses cited by no collected test: 1: UNCITED-1",
            f"clauses on torch {torch.__version__}:*",
        ]
    )
    output = result.stdout.str()
    assert "VIOLATED PASS-1" not in output
    assert "1 failed" in output[output.index(f"clauses on torch {torch.__version__}:") :]
    assert "VIOLATED FAIL-1 [cpu] is violated (area.md:" in output and "(observed" not in output


def test_terminal_summary_says_when_a_violated_clause_is_only_observed(suite):
    suite.write_specs(clause_md("PASS-1", "holds"), clause_md("FAIL-1", "is violated", basis="observed"), clause_md("OLD-1", versions="<1.0"))
    suite.write_tests(REPORT_TESTS)
    result = suite.run("--device", "cpu", "--conformance-report=r.json")
    result.stdout.fnmatch_lines(["VIOLATED FAIL-1 [[]cpu[]] is violated (area.md:*) (observed: no docs sentence states it)"])
    report = json.loads((suite.pytester.path / "r.json").read_text())
    assert clause_entry(report, "FAIL-1")["basis"] == "observed"


def test_terminal_counts_list_outcomes_in_the_report_order_failed_first(suite):
    """The end-of-run counts line and ``summary`` list outcomes in one order: report_io.OUTCOMES."""
    from conformance.reporting.summary import render_summary
    from conformance.reporting.report_io import OUTCOMES, counts_phrase, load_report

    suite.write_tests(REPORT_TESTS)
    result = suite.run("--device", "cpu", "--conformance-report=r.json")
    line = "  cpu: 1 failed, 1 not applicable, 1 passed"
    result.stdout.fnmatch_lines([f"clauses on torch {torch.__version__}:", line])
    assert list(OUTCOMES[:1]) == ["failed"]
    report = load_report(suite.pytester.path / "r.json")
    assert counts_phrase(report["totals"]["cpu"]) == line.split(": ", 1)[1]
    assert f"**Verdict: violated** — cpu: {line.split(': ', 1)[1]}" in render_summary(report)


# ----------------------------------------------------------------------------- configuration errors


def test_malformed_spec_dir_is_a_usage_error_naming_file_and_line(suite):
    suite.write_specs(clause_md("BAD-1", versions=">>1.13"), name="broken.md")
    suite.write_tests(TWO_CLAUSE_TESTS)
    result = suite.run()
    assert result.ret == USAGE_ERROR
    # line 1 area heading, 3 clause heading, 5 statement, 7 Source, 8 Versions
    result.stderr.fnmatch_lines(["*malformed spec*", "*/specs/broken.md:8: clause BAD-1: bad version specifier '>>1.13'"])


def test_missing_spec_dir_is_a_usage_error(suite):
    suite.write_tests(TWO_CLAUSE_TESTS)
    result = suite.pytester.runpytest("-p", "conformance.plugin", "--specs-dir=does-not-exist")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*does-not-exist: no spec files*"])


def test_unknown_hypothesis_profile_option_fails_the_run(suite):
    suite.write_tests(TWO_CLAUSE_TESTS)
    result = suite.run("--hypothesis-profile", "nope")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown hypothesis profile 'nope'; known: default, ci, thorough"])


def test_unknown_profile_in_environment_fails_the_run(suite, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "nope")
    suite.write_tests(TWO_CLAUSE_TESTS)
    result = suite.run()
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown hypothesis profile 'nope'*"])


@pytest.mark.parametrize(
    "environment, args, expected",
    [
        ({}, [], "default"),
        ({ENV_VAR: "ci"}, [], "ci"),
        ({"CI": "true"}, [], "ci"),
        ({ENV_VAR: "ci"}, ["--hypothesis-profile", "thorough"], "thorough"),
    ],
    ids=["default", "env-var", "ci-env", "option-wins"],
)
def test_hypothesis_profile_selection_shows_in_header(suite, monkeypatch, environment, args, expected):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    suite.write_tests(
        f"""
        import hypothesis

        @pytest.mark.spec("PASS-1")
        def test_profile_is_loaded():
            assert hypothesis.settings.get_current_profile_name() == {expected!r}
        """
    )
    result = suite.run(*args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"autograd-conformance *, 4 clauses, devices: cpu, cuda, mps, emu, modes: eager, hypothesis profile: {expected}"])


@pytest.mark.parametrize(
    "environment, expected",
    [
        ({}, "default"),
        ({"CI": "1"}, "ci"),
        ({"CI": "false"}, "default"),
        ({"CI": "0"}, "default"),
        ({ENV_VAR: "thorough", "CI": "1"}, "thorough"),
        ({ENV_VAR: "", "CI": "yes"}, "ci"),
    ],
)
def test_selected_profile_from_environment(environment, expected):
    assert selected_profile(environment) == expected


# ----------------------------------------------------------------------------- expectations file



#: the fields every valid entry needs besides clause and reason (TOML lines)
IN_FORCE = 'torch = ">=1.13"\ndevices = ["cpu"]\nissue = "pytorch/pytorch#1"\n'
TORCH, DEVICES, ISSUE = IN_FORCE.splitlines(keepends=True)


def entry(*lines: str) -> str:
    return "[[expected_failure]]\n" + "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def write_expectations(suite: Suite, body: str) -> None:
    (suite.pytester.path / "expectations.toml").write_text(textwrap.dedent(body), encoding="utf-8")


def test_expected_failure_from_the_file_is_a_non_blocking_known_failure(suite):
    suite.write_tests(REPORT_TESTS)
    write_expectations(
        suite,
        """
        [[expected_failure]]
        clause = "FAIL-1"
        torch = ">=1.13"
        devices = ["cpu"]
        issue = "pytorch/pytorch#123"
        reason = "torch defect #123"
        """,
    )
    result, report = run_report(suite, "--device", "cpu", "--expectations", "expectations.toml")
    assert result.ret == 0
    entry = cpu_result(report, "FAIL-1")
    assert entry["outcome"] == "known failure" and "torch defect #123" in entry["reason"]
    assert report["verdict"] == "conforms"
    (applied,) = report["expectations"]["applied"]
    assert applied["matched"] == ["test_conformance.py::test_violated[cpu]"]
    assert (applied["issue"], applied["reproduction"], applied["torch"], applied["devices"]) == (
        "pytorch/pytorch#123",
        None,
        ">=1.13",
        ["cpu"],
    )
    assert report["expectations"]["stale"] == []
    result.stdout.fnmatch_lines(["KNOWN FAILURE FAIL-1 [[]cpu[]] *torch defect #123*", "VERDICT: torch * conforms on cpu"])


def test_expectation_out_of_its_torch_range_or_device_is_not_applied(suite):
    suite.write_tests(REPORT_TESTS)
    write_expectations(
        suite,
        """
        [[expected_failure]]
        clause = "FAIL-1"
        torch = "<1.0"
        devices = ["cpu"]
        issue = "https://github.com/pytorch/pytorch/issues/1"
        reason = "only on ancient torch"

        [[expected_failure]]
        clause = "FAIL-1"
        torch = ">=1.13"
        devices = ["cuda"]
        reproduction = "test_conformance.py::test_violated"
        reason = "only on cuda"
        """,
    )
    result, report = run_report(suite, "--device", "cpu", "--expectations", "expectations.toml")
    assert result.ret == 1
    assert cpu_result(report, "FAIL-1")["outcome"] == "failed"
    assert [e["reason"] for e in report["expectations"]["applied"]] == ["only on cuda"]  # the other is not in force
    assert report["expectations"]["stale"] == []  # cuda is not in this run: nothing to say about it


def test_stale_expectations_are_warned_about_and_reported(suite):
    suite.write_tests(REPORT_TESTS)
    write_expectations(
        suite,
        """
        [[expected_failure]]
        clause = "PASS-1"
        torch = ">=1.13"
        devices = ["cpu", "cuda"]
        issue = "pytorch/pytorch#2"
        reason = "was broken once"

        [[expected_failure]]
        clause = "FAIL-1"
        test = "test_no_such_test"
        torch = ">=1.13"
        devices = ["cpu"]
        reproduction = "test_conformance.py::test_no_such_test"
        reason = "a typo in the test name"
        """,
    )
    result, report = run_report(suite, "--device", "cpu", "--expectations", "expectations.toml")
    assert result.ret == 1  # the typo left FAIL-1 failing
    assert cpu_result(report, "PASS-1")["outcome"] == "passed"
    assert [(e["clause"], e["why"]) for e in report["expectations"]["stale"]] == [
        ("PASS-1", "its tests passed: the failure is gone, remove the entry"),
        ("FAIL-1", "it matches no collected test"),
    ]
    result.stdout.fnmatch_lines(
        [
            "STALE EXPECTATION PASS-1 on torch >=1.13, cpu, cuda (expectations.toml:entry 1): its tests passed*",
            "STALE EXPECTATION FAIL-1 'test_no_such_test' *: it matches no collected test",
        ]
    )


def test_expectation_of_a_clause_whose_tests_were_not_collected_is_not_stale(suite):
    """Running one file of the suite says nothing about the known failures of the other files."""
    suite.write_tests(REPORT_TESTS)
    suite.write_tests('@pytest.mark.spec("PASS-1")\ndef test_other(device):\n    pass\n', name="test_other_area")
    write_expectations(suite, f'[[expected_failure]]\nclause = "FAIL-1"\n{IN_FORCE}reason = "known"\n')
    result, report = run_report(suite, "test_other_area.py", "--device", "cpu", "--expectations", "expectations.toml")
    assert result.ret == 0
    assert report["expectations"]["stale"] == []
    assert "STALE EXPECTATION" not in result.stdout.str()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (entry("clause = 'NOPE-1'", "reason = 'x'", IN_FORCE), "clause 'NOPE-1' is not in the spec"),
        (entry("clause = 'PASS-1'", IN_FORCE), "'reason' is required"),
        (entry("clause = 'PASS-1'", "reason = 'x'", DEVICES, ISSUE, "torch = 'two'"), "'torch' must be a version specifier"),
        (entry("clause = 'PASS-1'", "reason = 'x'", IN_FORCE, "device = 'cpu'"), "unknown key(s) device"),
        (entry("clause = 'PASS-1'", "reason = 'x'", TORCH, ISSUE, "devices = []"), "'devices' must be a non-empty list"),
        (
            entry("clause = 'PASS-1'", "reason = 'x'", TORCH, DEVICES),
            "PASS-1: name the upstream issue ('issue', e.g. \"pytorch/pytorch#12345\" or a URL) or a reproduction",
        ),
        (
            entry("clause = 'PASS-1'", "reason = 'x'", TORCH, DEVICES, "issue = '#12345'"),
            "'issue' must be owner/repo#N (\"pytorch/pytorch#12345\") or a URL, got '#12345'",
        ),
        (
            entry("clause = 'PASS-1'", "reason = 'x'", TORCH, DEVICES, "reproduction = ' '"),
            "'reproduction' must be a non-empty string",
        ),
        (
            entry("clause = 'PASS-1'", "reason = 'x'", DEVICES, ISSUE),
            "PASS-1: 'torch' is required: the torch versions the failure was seen on",
        ),
        (
            entry("clause = 'PASS-1'", "reason = 'x'", TORCH, ISSUE),
            "PASS-1: 'devices' is required: the devices the failure was seen on",
        ),
        ("[[expected_failure]\n", "is not valid TOML"),
    ],
)
def test_malformed_expectations_file_is_a_usage_error(suite, body, message):
    suite.write_tests(REPORT_TESTS)
    (suite.pytester.path / "expectations.toml").write_text(body, encoding="utf-8")
    result = suite.run("--expectations", "expectations.toml")
    assert result.ret == USAGE_ERROR
    assert message in result.stderr.str()


def test_missing_expectations_file_is_a_usage_error(suite):
    suite.write_tests(REPORT_TESTS)
    result = suite.run("--expectations", "nowhere.toml")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*cannot read expectations file *nowhere.toml*"])


def test_the_suites_own_expectations_file_is_valid_and_every_entry_has_a_reason():
    from conformance.spec.expectations import DEFAULT_EXPECTATIONS, load_expectations
    from conformance.spec.registry import load_specs

    entries = load_expectations(DEFAULT_EXPECTATIONS, load_specs())
    assert entries, "the suite ships its known torch defects"
    assert all(len(entry.reason) > 20 for entry in entries)
    assert all(entry.torch and entry.devices and (entry.issue or entry.reproduction) for entry in entries)


def test_the_accum_2_entry_names_its_reproduction_range_and_device():
    from conformance.spec.expectations import DEFAULT_EXPECTATIONS, load_expectations
    from conformance.spec.registry import load_specs

    (accum_2,) = [e for e in load_expectations(DEFAULT_EXPECTATIONS, load_specs()) if e.clause == "ACCUM-2"]
    assert (accum_2.torch, accum_2.devices, accum_2.issue) == (">=1.13.1", ("cpu", "emu", "cuda"), None)
    assert accum_2.reproduction.endswith("::" + accum_2.test)
    assert "No upstream issue found" in accum_2.reason
    assert accum_2.in_force("1.13.1") and accum_2.in_force("2.15.0+cu128") and not accum_2.in_force("1.12.1")


@pytest.mark.parametrize("device_string, applies", [("cuda", True), ("cuda:0", True), ("cuda:1", True), ("cpu", False), ("emu:0", False)])
def test_an_entry_naming_a_device_kind_covers_every_device_of_that_kind(device_string, applies):
    """tools/gpu-check runs on cuda:0: an entry seen on "cuda" applies there."""
    from conformance.spec.expectations import Expectation

    entry = Expectation(clause="A-1", reason="a defect", source="test", torch=">=2.0", devices=("cuda",))
    assert entry.matches("t.py::test_x", ("A-1",), device_string) is applies


# ----------------------------------------------------------------------------- report location and verdict


def test_report_is_written_by_default_in_the_invocation_directory(suite):
    suite.write_tests(REPORT_TESTS)
    result = suite.run("--device", "cpu")
    report = json.loads((suite.pytester.path / "conformance-report.json").read_text(encoding="utf-8"))
    assert report["schema"] == "autograd-conformance-report"
    result.stdout.fnmatch_lines(["report: *conformance-report.json*", "VERDICT: torch * VIOLATES the spec: 1 clause on cpu"])


def test_empty_report_option_writes_no_report(suite):
    suite.write_tests(REPORT_TESTS)
    suite.run("--device", "cpu", "--conformance-report=")
    assert not (suite.pytester.path / "conformance-report.json").exists()


def test_report_environment_describes_the_run(suite):
    suite.write_tests(REPORT_TESTS)
    _, report = run_report(suite, "--device", "cpu", "--hypothesis-seed", "1234")
    environment = report["environment"]
    assert environment["torch"] == torch.__version__
    assert environment["torch_cuda"] == torch.version.cuda
    assert environment["hypothesis_profile"] == "default" and environment["hypothesis_seed"] == "1234"
    assert environment["device_status"]["cpu"]["available"] is True
    assert {"python", "platform", "numpy", "torch_git", "cudnn"} <= set(environment)
    assert report["suite_version"] and report["created"].endswith("Z")


def test_interrupted_write_leaves_the_previous_report_intact(tmp_path, monkeypatch):
    from conformance.reporting.report import write_json_atomically

    target = tmp_path / "report.json"
    write_json_atomically(target, {"schema_version": 1, "run": "previous"})

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("conformance.reporting.report_io.os.replace", interrupted)  # Ctrl-C after the data, before the rename
    with pytest.raises(KeyboardInterrupt):
        write_json_atomically(target, {"schema_version": 1, "run": "new"})
    assert json.loads(target.read_text()) == {"schema_version": 1, "run": "previous"}
    assert list(tmp_path.iterdir()) == [target], "the temporary file must be removed"


def test_collect_only_gives_no_verdict_and_a_report_of_tests_that_did_not_run(suite):
    suite.write_tests("""
        @pytest.mark.spec("PASS-1")
        def test_holds(device):
            pass
        """)
    result = suite.run("--device=cpu", "--collect-only", "--conformance-report=out.json")
    assert result.ret == 0
    assert not [line for line in result.outlines if "VERDICT" in line]
    result.stdout.fnmatch_lines(["no test ran (--collect-only): no verdict*"])
    report = json.loads((suite.pytester.path / "out.json").read_text(encoding="utf-8"))
    assert [(t["nodeid"], t["outcome"]) for t in report["tests"]] == [("test_conformance.py::test_holds[cpu]", "not run")]
