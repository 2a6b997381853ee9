"""The spec parser and clause registry (conformance/spec/registry.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from conformance.spec.registry import BASES, Clause, SpecError, SpecRegistry, default_specs_dir, load_specs, parse_spec_file

URL = "https://pytorch.org/docs/stable/generated/torch.no_grad.html"
SEED = "000_11918659c5b97dba.txt"

AREA = "# Grad mode"
HEADING = "## GRADMODE-1: no_grad context disables recording"
STATEMENT = "> Inside `with torch.no_grad():` results do not require grad."
SOURCE = f"- **Source**: <{URL}>, seed `{SEED}`"
VERSIONS = "- **Versions**: `>=1.13`"
BASIS = "- **Basis**: `documented`"
EXAMPLE = "```python\nx = torch.ones(3, requires_grad=True)\n```"


def clause_md(
    heading: str = HEADING,
    statement: str | None = STATEMENT,
    source: str | None = SOURCE,
    versions: str | None = VERSIONS,
    example: str | None = EXAMPLE,
    basis: str | None = BASIS,
) -> str:
    """One clause's Markdown; pass None to leave a part out."""
    fields = "\n".join(part for part in (source, versions, basis) if part is not None) or None
    return "\n\n".join(part for part in (heading, statement, fields, example) if part is not None)


def write_spec(directory: Path, name: str, *clauses: str, area: str | None = AREA) -> Path:
    path = directory / name
    parts = ([area] if area is not None else []) + list(clauses or (clause_md(),))
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return path


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """1-based line number of the ``occurrence``-th line of ``path`` containing ``needle``."""
    hits = [n for n, line in enumerate(path.read_text().splitlines(), start=1) if needle in line]
    return hits[occurrence - 1]


def spec_error(path: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec_file(path)
    return info.value


def assert_single_problem_at(error: SpecError, path: Path, line: int, *fragments: str) -> None:
    assert len(error.problems) == 1, error.problems
    problem = error.problems[0]
    assert problem.startswith(f"{path}:{line}:"), problem
    for fragment in fragments:
        assert fragment in problem, problem
    assert f"{path}:{line}:" in str(error)


# ----------------------------------------------------------------------------- valid files


def test_valid_clause_parses_every_field(tmp_path):
    path = write_spec(tmp_path, "grad_mode.md")
    (clause,) = parse_spec_file(path)
    assert clause.id == "GRADMODE-1"
    assert clause.title == "no_grad context disables recording"
    assert clause.statement == "Inside with torch.no_grad(): results do not require grad."
    assert clause.sources == (URL, f"seed:{SEED}")
    assert isinstance(clause.versions, SpecifierSet)
    assert clause.versions == SpecifierSet(">=1.13")
    assert clause.example == "x = torch.ones(3, requires_grad=True)\n"
    assert clause.area == "Grad mode"
    assert clause.path == path
    assert clause.line == 3 == line_of(path, HEADING)
    assert clause.location == "grad_mode.md:3"
    assert clause.basis == "documented"
    assert clause.basis_note == ""


@pytest.mark.parametrize("basis", BASES)
def test_every_basis_value_parses(tmp_path, basis):
    path = write_spec(tmp_path, "basis.md", clause_md(basis=f"- **Basis**: `{basis}`"))
    assert parse_spec_file(path)[0].basis == basis


@pytest.mark.parametrize("separator", [" — ", ": ", " - "])
def test_basis_may_say_why_after_the_value(tmp_path, separator):
    line = f"- **Basis**: `observed`{separator}no docs sentence gives the exception type"
    path = write_spec(tmp_path, "why.md", clause_md(basis=line))
    (clause,) = parse_spec_file(path)
    assert (clause.basis, clause.basis_note) == ("observed", "no docs sentence gives the exception type")


def test_clause_lines_are_one_based_heading_lines(tmp_path):
    second = clause_md(heading="## GRADMODE-2: second clause")
    path = write_spec(tmp_path, "two.md", clause_md(), second)
    clauses = parse_spec_file(path)
    assert [c.id for c in clauses] == ["GRADMODE-1", "GRADMODE-2"]
    assert [c.line for c in clauses] == [line_of(path, "GRADMODE-1"), line_of(path, "GRADMODE-2")]


def test_seed_name_alone_is_a_source(tmp_path):
    path = write_spec(tmp_path, "seed.md", clause_md(source=f"- **Source**: seed `{SEED}`"))
    assert parse_spec_file(path)[0].sources == (f"seed:{SEED}",)


def test_bare_url_is_a_source(tmp_path):
    path = write_spec(tmp_path, "url.md", clause_md(source=f"- **Source**: {URL}"))
    assert parse_spec_file(path)[0].sources == (URL,)


def test_statement_wrapped_over_lines_is_one_paragraph(tmp_path):
    path = write_spec(tmp_path, "wrapped.md", clause_md(statement="> First half\n> second half."))
    assert parse_spec_file(path)[0].statement == "First half second half."


def test_version_range_parses_as_specifier_set(tmp_path):
    path = write_spec(tmp_path, "range.md", clause_md(versions="- **Versions**: `>=1.13,<2.0`"))
    assert parse_spec_file(path)[0].versions == SpecifierSet(">=1.13,<2.0")


def test_registry_maps_ids_across_files_and_ignores_readme(tmp_path):
    write_spec(tmp_path, "a.md", clause_md(heading="## AREA-1: a"))
    write_spec(tmp_path, "b.md", clause_md(heading="## OTHER-AREA-2: b"))
    (tmp_path / "README.md").write_text("# Not a spec\n\n## no clause id here\n")
    registry = SpecRegistry.from_directory(tmp_path)
    assert sorted(registry) == ["AREA-1", "OTHER-AREA-2"]
    assert len(registry) == 2
    assert isinstance(registry["AREA-1"], Clause)
    assert registry["OTHER-AREA-2"].path == tmp_path / "b.md"


# ----------------------------------------------------------------------------- malformed files


def test_level2_heading_without_id_is_an_error(tmp_path):
    path = write_spec(tmp_path, "noid.md", clause_md(), clause_md(heading="## Just a title"))
    assert_single_problem_at(spec_error(path), path, line_of(path, "## Just a title"), "has no clause ID")


def test_duplicate_id_across_files_names_both_locations(tmp_path):
    first = write_spec(tmp_path, "a.md")
    second = write_spec(tmp_path, "b.md", clause_md(heading="## OTHER-1: x"), clause_md())
    with pytest.raises(SpecError) as info:
        SpecRegistry.from_directory(tmp_path)
    first_line, second_line = line_of(first, "GRADMODE-1"), line_of(second, "GRADMODE-1")
    assert_single_problem_at(info.value, second, second_line, "duplicate clause ID GRADMODE-1", f"{first}:{first_line}")


@pytest.mark.parametrize("raw", [">>1.13", "not a version", ""], ids=["double-gt", "words", "empty"])
def test_bad_version_specifier_is_an_error_at_the_versions_line(tmp_path, raw):
    versions = f"- **Versions**: `{raw}`" if raw else "- **Versions**:"
    path = write_spec(tmp_path, "bad.md", clause_md(versions=versions))
    assert_single_problem_at(spec_error(path), path, line_of(path, "**Versions**"), "bad version specifier", repr(raw))


def test_missing_source_is_an_error_at_the_heading(tmp_path):
    path = write_spec(tmp_path, "nosource.md", clause_md(source=None))
    assert_single_problem_at(spec_error(path), path, line_of(path, HEADING), "GRADMODE-1", "missing 'Source:'")


def test_source_without_url_or_seed_is_an_error_at_the_source_line(tmp_path):
    path = write_spec(tmp_path, "vague.md", clause_md(source="- **Source**: the docs, somewhere"))
    assert_single_problem_at(spec_error(path), path, line_of(path, "**Source**"), "neither a URL nor a seed file")


def test_missing_versions_is_an_error_at_the_heading(tmp_path):
    path = write_spec(tmp_path, "noversions.md", clause_md(versions=None))
    assert_single_problem_at(spec_error(path), path, line_of(path, HEADING), "missing 'Versions:'")


def test_missing_basis_is_an_error_at_the_heading(tmp_path):
    path = write_spec(tmp_path, "nobasis.md", clause_md(basis=None))
    error = spec_error(path)
    assert_single_problem_at(error, path, line_of(path, HEADING), "GRADMODE-1", "missing 'Basis:'")
    assert "documented, observed, deprecated" in error.problems[0]


@pytest.mark.parametrize("raw", ["documentd", "`seen`", "", "documented by the docs"], ids=["typo", "other", "empty", "no-separator"])
def test_unknown_basis_is_an_error_at_the_basis_line(tmp_path, raw):
    path = write_spec(tmp_path, "badbasis.md", clause_md(basis=f"- **Basis**: {raw}".rstrip()))
    assert_single_problem_at(
        spec_error(path), path, line_of(path, "**Basis**"), "unknown basis", "expected one of documented, observed, deprecated"
    )


def test_missing_statement_is_an_error_at_the_heading(tmp_path):
    path = write_spec(tmp_path, "nostatement.md", clause_md(statement=None))
    assert_single_problem_at(spec_error(path), path, line_of(path, HEADING), "missing normative sentence")


def test_block_quote_after_the_fields_is_not_the_statement(tmp_path):
    late_quote = clause_md(statement=None, example=EXAMPLE + "\n\n> A remark, not the statement.")
    path = write_spec(tmp_path, "late.md", late_quote)
    assert_single_problem_at(spec_error(path), path, line_of(path, HEADING), "missing normative sentence")


def test_statement_of_two_paragraphs_is_an_error(tmp_path):
    path = write_spec(tmp_path, "twopara.md", clause_md(statement="> First paragraph.\n>\n> Second paragraph."))
    assert_single_problem_at(spec_error(path), path, line_of(path, HEADING), "one paragraph, found 2")


def test_missing_python_example_is_an_error(tmp_path):
    not_python = "```text\nnot an example\n```"
    path = write_spec(tmp_path, "noexample.md", clause_md(example=not_python))
    assert_single_problem_at(spec_error(path), path, line_of(path, HEADING), "missing minimal example")


def test_file_without_level1_heading_is_an_error_at_line_1(tmp_path):
    path = write_spec(tmp_path, "noarea.md", area=None)
    assert_single_problem_at(spec_error(path), path, 1, "no level-1 heading")


def test_every_problem_in_a_file_is_reported(tmp_path):
    path = write_spec(
        tmp_path,
        "many.md",
        clause_md(heading="## A-1: no source", source=None),
        clause_md(heading="## A-2: no versions", versions=None),
    )
    problems = spec_error(path).problems
    assert [p.split(": clause ")[0] for p in problems] == [f"{path}:{line_of(path, 'A-1')}", f"{path}:{line_of(path, 'A-2')}"]


def test_registry_reports_problems_from_every_file(tmp_path):
    bad_a = write_spec(tmp_path, "a.md", clause_md(heading="## A-1: x", source=None))
    bad_b = write_spec(tmp_path, "b.md", clause_md(heading="## B-1: y", example=None))
    with pytest.raises(SpecError) as info:
        SpecRegistry.from_directory(tmp_path)
    assert [p.split(":")[0] for p in info.value.problems] == [str(bad_a), str(bad_b)]


@pytest.mark.parametrize("extra_file", [None, "README.md", "notes.txt"])
def test_directory_without_spec_files_is_an_error_naming_it(tmp_path, extra_file):
    if extra_file:
        (tmp_path / extra_file).write_text("# Title\n")
    with pytest.raises(SpecError, match="no spec files") as info:
        SpecRegistry.from_directory(tmp_path)
    assert str(tmp_path) in str(info.value)


# ----------------------------------------------------------------------------- versions


def clause_for(versions: str) -> Clause:
    return Clause("X-1", "t", "s", ("seed:000_00000000.txt",), SpecifierSet(versions), "", Path("x.md"), 1, "X")


@pytest.mark.parametrize(
    "versions, torch_version, applies",
    [
        (">=1.13", "2.13.0+cpu", True),
        (">=2.14", "2.13.0+cpu", False),
        ("<2.0", "2.13.0+cu121", False),
        ("==2.13.0", "2.13.0+cpu", True),
        (">=2.16", "2.16.0.dev20260101", True),
        ("<2.16", "2.16.0.dev20260101", False),
        ("==2.16.0", "2.16.0.dev20260101+cpu", True),
        (">=2.0", "2.0.0rc1", True),
        (">=1.13,<2.0", "1.13.1", True),
        (">=1.13,<2.0", "1.12.1", False),
        (">=1.13,<2.0", "2.0.0", False),
        (">=1.13,<2.0", "1.99.0.dev20230101", True),
    ],
)
def test_applies_to(versions, torch_version, applies):
    assert clause_for(versions).applies_to(torch_version) is applies


def test_applies_to_accepts_torch_version_object():
    import torch

    assert clause_for(">=1.13").applies_to(torch.__version__)


# ----------------------------------------------------------------------------- the repository's specs


def test_default_specs_dir_is_the_repository_specs():
    assert default_specs_dir() == Path(__file__).resolve().parent.parent / "specs"


def test_repository_specs_load():
    registry = load_specs()
    assert len(registry) > 0
    assert all(isinstance(clause, Clause) for clause in registry.values())


@pytest.mark.parametrize(
    "spec_file",
    sorted(p for p in default_specs_dir().glob("*.md") if p.name.lower() != "readme.md"),
    ids=lambda p: p.name,
)
def test_every_repository_spec_file_parses(spec_file):
    clauses = parse_spec_file(spec_file)
    assert clauses, f"{spec_file.name} defines no clause"
    registry = load_specs()
    for clause in clauses:
        assert registry[clause.id].path == clause.path
        assert clause.statement and clause.sources and clause.example.strip()
        assert clause.basis in BASES


def test_documented_clauses_cite_a_docs_page():
    """A clause that rests on a docs sentence must cite one: a seed article or a source file is not documentation."""
    docs_hosts = ("https://pytorch.org/docs/", "https://pytorch.org/tutorials/", "https://pytorch.org/cppdocs/")
    undocumented = [
        cid for cid, clause in load_specs().items()
        if clause.basis == "documented" and not any(s.startswith(docs_hosts) for s in clause.sources)
    ]
    assert not undocumented, f"clauses marked documented without a docs URL in their Source: {undocumented}"


def test_observed_and_deprecated_clauses_say_why():
    """``observed`` and ``deprecated`` are claims about what the docs do not say (or say will change): each says which."""
    silent = [cid for cid, clause in load_specs().items() if clause.basis != "documented" and not clause.basis_note]
    assert not silent, f"clauses without a reason after their basis: {silent}"
