"""The README and docs/ agree with the code: the gate workflow, the commands they show, the tox matrix."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import pytest
import yaml

from conformance.reporting.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
WORKFLOW = ROOT / "docs" / "torch-upgrade-gate.yml"


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_shows_the_committed_gate_workflow_verbatim():
    assert WORKFLOW.read_text(encoding="utf-8") in fenced_blocks(README, "yaml"), (
        "the README's workflow must be docs/torch-upgrade-gate.yml, unchanged: copy the file into the README"
    )


def test_gate_workflow_runs_both_sides_and_gates_on_the_diff():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    jobs = workflow["jobs"]
    assert jobs["conformance"]["strategy"]["matrix"]["side"] == ["old", "new"]
    assert jobs["gate"]["needs"] == "conformance"
    gate_script = "\n".join(step.get("run", "") for step in jobs["gate"]["steps"])
    assert "python -m conformance diff conformance-old.json conformance-new.json" in gate_script
    assert 'exit "$status"' in gate_script, "the gate must exit with diff's status"


def test_gate_workflow_benchmarks_both_torch_versions_on_one_runner_and_compares():
    jobs = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]
    steps = [step.get("run", "") for step in jobs["benchmarks"]["steps"]]
    script = "\n".join(steps)
    old_side = script.index('"torch==$OLD_TORCH"')
    new_side = script.index('"torch==$NEW_TORCH"')
    assert old_side < new_side, "the baseline must be saved before the new torch is compared with it"
    assert "--pyargs conformance.benchmarks" in script and "--benchmark-save=old" in script
    assert re.search(r"--benchmark-compare=0001 --benchmark-compare-fail=median:\d+%", script)
    assert "python -m conformance ratios benchmarks-old.json benchmarks-new.json --max-increase" in script
    assert 'exit "$status"' in steps[-1] or 'exit "$status"' in script, "the ratio step must exit with the gate's status"


def conformance_commands(text: str) -> list[list[str]]:
    """Every ``python -m conformance ...`` command line in ``text``, as argument lists."""
    commands = []
    for line in text.splitlines():
        match = re.search(r"python -m conformance (.*)", line)
        if match:
            arguments = re.split(r"#|\|\||>>|`|\)|\|", match.group(1))[0]
            commands.append(shlex.split(arguments.replace("\\", "")))
    return commands


@pytest.mark.parametrize("source", ["README.md", "docs/torch-upgrade-gate.yml", "docs/report-schema.md", "tools/archive-matrix"])
def test_every_report_tool_command_shown_in_the_docs_parses(source):
    text = (ROOT / source).read_text(encoding="utf-8")
    commands = conformance_commands(text)
    assert commands, f"{source} shows no python -m conformance command"
    parser = build_parser()
    for arguments in commands:
        try:
            parser.parse_args(arguments)
        except SystemExit:
            pytest.fail(f"{source}: `python -m conformance {' '.join(arguments)}` does not parse")


def test_tox_has_an_environment_per_torch_minor_line_pinned_to_a_patch_release():
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    pins = re.findall(r"^\s*torch(\d+): torch==(\d+)\.(\d+)\.(\d+)$", tox["testenv"]["deps"], flags=re.M)
    assert pins, "tox.ini pins no torch"
    for env, major, minor, _patch in pins:
        assert env == f"{major}{minor}" or env == f"{major}{minor:0>1}", f"env torch{env} pins torch {major}.{minor}"
    lines = [(int(major), int(minor)) for _, major, minor, _ in pins]
    assert lines[0] == (1, 13) and lines == sorted(lines)
    expected_2x = [(2, minor) for minor in range(0, lines[-1][1] + 1)]
    assert lines[1:] == expected_2x, "every 2.x minor line up to the newest must have an environment"


# ----------------------------------------------------------------------------- the committed version matrix

REPORTS = sorted((ROOT / "docs" / "reports").glob("torch-*.json.gz"))
#: the behaviours that changed between torch 1.13 and the newest release: one clause per side
VERSION_SPLIT_CLAUSES = {
    "ACCUM-6", "ACCUM-7", "HOOK-13", "HOOK-14", "XFER-11", "XFER-12", "CKPT-10", "CKPT-11", "HIGHER-3", "HIGHER-6",
    "NONDIFF-6", "NONDIFF-7",
}  # fmt: skip
#: clauses about what arrived after torch 1.13 (not applicable there): torch.func, setup_context, vmap rules, the
#: rewritten non-reentrant checkpoint, materialize_grads, allow_mutation_on_saved_tensors, complex backward's check,
#: the hook APIs and orders of 2.0 to 2.3
ARRIVED_AFTER_1_13 = {
    "BWD-9", "CKPT-3", "CKPT-9", "CKPT-12", "COMPLEX-4", "FUNC-9", "FUNC-11", "FUNCTIONAL-5", "FUNCTIONAL-6",
    "FUNCTIONAL-7", "FUNCTIONAL-8", "FUNCTIONAL-9", "FUNCTIONAL-10", "SAVED-13",
    *(f"HOOK-{n}" for n in range(15, 24)),
}  # fmt: skip
#: torch defects of the oldest line (known failures there) that the newest release no longer has
FIXED_SINCE_1_13 = {"AMP-3", "GRADMODE-9", "LEAF-6"}


def test_committed_matrix_is_rebuilt_from_the_committed_reports(tmp_path):
    from conformance.reporting.cli import main

    assert len(REPORTS) == 17, "one report per tox torch environment"
    out = tmp_path / "matrix.md"
    assert main(["matrix", *[str(p.relative_to(ROOT)) for p in REPORTS], "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == (ROOT / "docs" / "matrix.md").read_text(encoding="utf-8"), (
        "docs/matrix.md is stale: run tools/archive-matrix"
    )


def test_oldest_to_newest_torch_diff_is_exactly_the_version_conditioned_clauses_and_fixed_defects():
    from conformance.reporting.diff import diff_reports
    from conformance.reporting.report_io import load_report, torch_sort_key, torch_version

    ordered = sorted((load_report(p) for p in REPORTS), key=lambda report: torch_sort_key(torch_version(report)))
    oldest, newest = ordered[0], ordered[-1]
    result = diff_reports(oldest, newest, "oldest", "newest")
    # clauses written after the oldest report was archived (the newest is re-run more often) are not version splits
    in_both = {c["id"] for c in oldest["clauses"]} & {c["id"] for c in newest["clauses"]}
    changed = {change.clause_id for changes in result.changes.values() for change in changes} & in_both
    assert result.regressions == []
    assert {c.clause_id for c in result.changes["applicability"]} & in_both == VERSION_SPLIT_CLAUSES | ARRIVED_AFTER_1_13
    assert {c.clause_id for c in result.changes["fix"]} & in_both == FIXED_SINCE_1_13
    assert changed == VERSION_SPLIT_CLAUSES | ARRIVED_AFTER_1_13 | FIXED_SINCE_1_13
