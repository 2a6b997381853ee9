"""The coverage map (specs/coverage.toml) is complete for the installed torch, cites only defined clauses, and
docs/coverage.md is its current rendering (conformance/spec/coverage.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.__main__ import main as cli_main
from conformance.spec import coverage
from conformance.spec.coverage import NAMESPACES, CoverageMapError, load_map, render
from conformance.spec.registry import load_specs

ROOT = Path(__file__).resolve().parent.parent
MAP = ROOT / "specs" / "coverage.toml"
DOCS = ROOT / "docs" / "coverage.md"


@pytest.fixture(scope="module")
def coverage_map():
    return load_map(MAP)


@pytest.fixture(scope="module")
def installed():
    return coverage.installed_public_names()


def test_every_public_name_of_the_installed_torch_is_in_the_map(coverage_map, installed):
    version, names = installed
    missing = coverage_map.missing_names(names)
    assert not missing, (
        f"public autograd names of torch {version} that {MAP.relative_to(ROOT)} does not map (a new torch API is a "
        "coverage gap until mapped): "
        + "; ".join(f"{namespace}: {', '.join(found)}" for namespace, found in missing.items())
        + ". Add each under [names.\"<namespace>\"] with its clause IDs or \"not covered: why\" (and versions = "
        "\">=X.Y\" if older lines lack it), then run `python -m conformance coverage -o docs/coverage.md`"
    )


def test_the_installed_torch_agrees_with_the_versions_in_the_map(coverage_map, installed):
    version, names = installed
    conflicts = coverage_map.version_conflicts(names, version)
    assert not conflicts, f"fix versions in {MAP.relative_to(ROOT)}:\n" + "\n".join(conflicts)


def test_every_clause_the_map_cites_is_defined_by_a_spec(coverage_map):
    unknown = coverage_map.unknown_clauses(load_specs())
    assert not unknown, f"{MAP.relative_to(ROOT)} cites clauses no spec defines: " + "; ".join(
        f"{clause} (by {', '.join(where)})" for clause, where in unknown.items()
    )


def test_docs_coverage_md_is_the_current_rendering(coverage_map):
    expected = render(coverage_map, load_specs())
    assert DOCS.read_text(encoding="utf-8") == expected, (
        "docs/coverage.md is stale: run `python -m conformance coverage -o docs/coverage.md`"
    )


def test_the_map_names_every_namespace_and_the_notes_eight_sections(coverage_map):
    assert list(coverage_map.names) == list(NAMESPACES)
    top = [s.title for s in coverage_map.sections if s.level == 1]
    assert top == [
        "How autograd encodes the history",
        "Gradients for non-differentiable functions",
        "Locally disabling gradient computation",
        "In-place operations with autograd",
        "Multithreaded Autograd",
        "Autograd for Complex Numbers",
        "Hooks for saved tensors",
        "Backward Hooks execution",
    ]
    assert str(coverage_map.reference_torch) in coverage_map.checked_torch


def test_figures_count_names_public_on_the_reference_torch(coverage_map):
    figures = coverage.figures(coverage_map)
    assert figures["public names"] == (
        sum(figures[n][0] for n in NAMESPACES),
        sum(figures[n][1] for n in NAMESPACES),
    )
    later = coverage_map.names["torch.autograd.graph"]["queue_callback"]  # public from 2.15 only
    assert not later.public_in(coverage_map.reference_torch) and later.public_in("2.15.0")
    assert figures["note headings (sections and subsections)"][1] == len(coverage_map.sections)


# ------------------------------------------------------------------------------ the loader's checks, on small maps

SMALL = """
reference_torch = "2.13.0"
checked_torch = ["2.13.0"]

[[section]]
title = "A"
level = 1
clauses = ["BWD-1"]

[[section]]
title = "A.1"
level = 2
not_covered = "background"
"""


def small_map(tmp_path: Path, names: dict[str, str] | None = None, extra: str = "") -> Path:
    body = SMALL + extra
    for namespace in NAMESPACES:
        body += f'\n[names."{namespace}"]\n' + (names or {}).get(namespace, 'x = ["BWD-1"]') + "\n"
    path = tmp_path / "coverage.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_a_name_of_the_installed_torch_missing_from_the_map_is_reported_with_where_to_add_it(tmp_path):
    loaded = load_map(small_map(tmp_path))
    names = {namespace: ["x"] for namespace in NAMESPACES}
    names["torch.autograd.graph"] = ["x", "brand_new_api"]
    assert loaded.missing_names(names) == {"torch.autograd.graph": ["brand_new_api"]}
    (gap,) = coverage.gaps(loaded, load_specs(), names)
    assert "brand_new_api" in gap and "[names.'torch.autograd.graph']" in gap and str(loaded.path) in gap


def test_names_the_installed_torch_lacks_are_marked_not_reported(tmp_path):
    loaded = load_map(small_map(tmp_path, {"torch.func": 'x = ["BWD-1"]\nold = "not covered: gone"'}))
    names = {namespace: ["x"] for namespace in NAMESPACES}
    assert loaded.missing_names(names) == {}
    assert loaded.absent_names(names) == {"torch.func": ["old"]}
    text = render(loaded, None, ("9.9.0", names))
    assert "`old` (absent from the installed torch 9.9.0)" in text


def test_an_unknown_clause_id_is_reported(tmp_path):
    loaded = load_map(small_map(tmp_path, {"torch.Tensor": 'x = ["NOSUCH-99"]'}))
    assert loaded.unknown_clauses(load_specs()) == {"NOSUCH-99": ["torch.Tensor.x"]}


@pytest.mark.parametrize(
    "entry, problem",
    [
        ('x = "covered, trust me"', "must read 'not covered: '"),
        ("x = []", "non-empty list"),
        ('x = ["not an id"]', "not clause IDs"),
        ('x = { clauses = ["BWD-1"], not_covered = "both" }', "exactly one of"),
        ('x = { clauses = ["BWD-1"], versions = "2.x" }', "bad version specifier"),
        ('x = { clauses = ["BWD-1"], colour = "red" }', "unknown keys colour"),
    ],
)
def test_a_malformed_entry_is_an_error_naming_it(tmp_path, entry, problem):
    with pytest.raises(CoverageMapError) as raised:
        load_map(small_map(tmp_path, {"torch.func": entry}))
    assert any("torch.func.x" in p and problem in p for p in raised.value.problems), raised.value.problems


def test_a_missing_namespace_and_a_bad_section_are_errors(tmp_path):
    path = small_map(tmp_path, extra='\n[[section]]\ntitle = "B"\nlevel = 3\nclauses = ["BWD-1"]\n')
    path.write_text(path.read_text().replace('[names."torch.func"]\nx = ["BWD-1"]\n', ""), encoding="utf-8")
    with pytest.raises(CoverageMapError) as raised:
        load_map(path)
    text = "\n".join(raised.value.problems)
    assert "[names.'torch.func'] is missing" in text and "level must be 1" in text


# ------------------------------------------------------------------------------ the command


def test_coverage_command_prints_the_rendering_and_writes_it(tmp_path, capsys, coverage_map):
    assert cli_main(["coverage"]) == 0
    expected = render(coverage_map, load_specs())
    assert capsys.readouterr().out == expected
    out = tmp_path / "coverage.md"
    assert cli_main(["coverage", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == expected


def test_coverage_check_exits_1_on_a_gap_and_names_it(tmp_path, capsys):
    path = small_map(tmp_path)
    assert cli_main(["coverage", "--map", str(path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "gap: public names of torch.autograd missing from the map:" in err and "backward" in err


def test_coverage_command_refuses_a_malformed_map(tmp_path, capsys):
    path = tmp_path / "coverage.toml"
    path.write_text("reference_torch = [", encoding="utf-8")
    assert cli_main(["coverage", "--map", str(path)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_rendering_imports_no_torch():
    """The report tools' promise: ``coverage`` without --installed/--check renders without importing torch."""
    import subprocess
    import sys

    code = (
        "import sys; from conformance.spec.coverage import main; import io, contextlib\n"
        "with contextlib.redirect_stdout(io.StringIO()): status = main([])\n"
        "print(status, 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["0", "False"], result.stderr[-2000:]
