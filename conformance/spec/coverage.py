"""The coverage map: which documented autograd surface the clauses cover, and what they leave out.

The map is ``specs/coverage.toml`` (beside the spec files; the spec parser reads only ``*.md``, so the map is not
a spec). It names

* every section and subsection of PyTorch's "Autograd mechanics" note (:data:`NOTE_URL`), in the note's order, and
* every public name of the namespaces in :data:`NAMESPACES`,

each with the clause IDs (``specs/*.md``) that state its behaviour, or with ``not covered: <why>``.

**Public names.** For a module (``torch.autograd``, ``torch.autograd.graph``, ``torch.autograd.forward_ad``,
``torch.autograd.functional``, ``torch.utils.checkpoint``, ``torch.func``): its ``__all__`` where it has one (as
torch declares it, submodule names included: ``torch.autograd.__all__`` lists ``grad_mode`` and ``variable``);
otherwise (older torch) the names of ``dir(module)`` that do not start with an underscore, leaving out modules
(submodules and imported modules) and objects another package defines (``__module__`` not under ``torch``: the
``typing`` names a module imports). For a class (``torch.Tensor``, ``torch.nn.Module``): the names of
``dir(cls)`` that do not start with an underscore and contain ``grad`` or ``hook``, plus the autograd names listed
in :data:`CLASS_EXTRAS` that the class has (``backward``, ``detach``, ``is_leaf``, ``data``, ...; ``train`` and
``eval``). The state-dict hooks of ``nn.Module`` match the rule and are mapped as not autograd.

**Versions.** The map holds the union of the public names of the torch lines it was checked on
(``checked_torch``). A name that is not public on all of them carries ``versions``, a PEP 440 range over the torch
lines where it is (as far as the checked lines tell). The rendering (``docs/coverage.md``) is computed from the map
and the specs alone, so it is the same whatever torch is installed; its figures count the names public on
``reference_torch`` (the suite's CI pin). :func:`installed_public_names` introspects the installed torch: the
self-test (``tests/test_coverage_map.py``) fails when one of its public names is not in the map, and names the map
lists that the installed torch lacks are fine (``python -m conformance coverage --installed`` marks them).

Map format (TOML)::

    reference_torch = "2.13.0"
    checked_torch = ["1.13.1", "2.13.0"]

    [[section]]                      # one per heading of the note, in order
    title = "Saved tensors"
    level = 2                        # 1: a section, 2: a subsection of the last section
    clauses = ["SAVED-1", "SAVED-6"] # or: not_covered = "why"
    note = "optional remark"

    [names."torch.autograd"]         # one table per namespace of NAMESPACES
    backward = ["BWD-1", "BWD-7"]                              # clause IDs
    Variable = "not covered: the deprecated Variable API"      # a reason
    grad = { clauses = ["ACCUM-10"], note = "..." }            # the long form
    enforce_grad_layout_policy = { not_covered = "...", versions = ">=2.13" }

This module imports no torch at import time: the report tools promise not to (the ``coverage`` command imports it
only for ``--installed`` and ``--check``).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "CLASS_EXTRAS",
    "CoverageMap",
    "CoverageMapError",
    "NAMESPACES",
    "NOTE_URL",
    "NameEntry",
    "Section",
    "default_map_path",
    "figures",
    "gaps",
    "installed_public_names",
    "load_map",
    "main",
    "public_names",
    "render",
]

NOTE_URL = "https://pytorch.org/docs/stable/notes/autograd.html"
#: the namespaces whose public names the map covers, in the order the rendering shows them
NAMESPACES = (
    "torch.autograd",
    "torch.autograd.graph",
    "torch.autograd.forward_ad",
    "torch.autograd.functional",
    "torch.utils.checkpoint",
    "torch.func",
    "torch.Tensor",
    "torch.nn.Module",
)
#: autograd names of the classes in NAMESPACES that the grad/hook rule does not select
CLASS_EXTRAS = {
    "torch.Tensor": ("backward", "data", "detach", "detach_", "is_inference", "is_leaf", "output_nr"),
    "torch.nn.Module": ("eval", "train"),
}
CLASS_WORDS = ("grad", "hook")
NOT_COVERED = "not covered: "
CLAUSE_ID = re.compile(r"^[A-Z][A-Z0-9]*(?:-[A-Z][A-Z0-9]*)*-\d+$")
EXIT_OK, EXIT_GAPS, EXIT_BAD_INPUT = 0, 1, 2


class CoverageMapError(ValueError):
    """A malformed coverage map; every problem names the map and the entry."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("malformed coverage map:\n" + "\n".join(f"  {p}" for p in self.problems))


@dataclass(frozen=True)
class Section:
    title: str
    level: int  # 1: a section of the note, 2: a subsection
    clauses: tuple[str, ...] = ()
    why: str = ""  # why it is not covered ("" when it is)
    note: str = ""

    @property
    def covered(self) -> bool:
        return bool(self.clauses)


@dataclass(frozen=True)
class NameEntry:
    namespace: str
    name: str
    clauses: tuple[str, ...] = ()
    why: str = ""
    note: str = ""
    versions: SpecifierSet | None = None  # the torch lines where the name is public; None: all checked lines

    @property
    def covered(self) -> bool:
        return bool(self.clauses)

    @property
    def qualified(self) -> str:
        return f"{self.namespace}.{self.name}"

    def public_in(self, torch_version: str | Version) -> bool:
        if self.versions is None:
            return True
        version = Version(Version(str(torch_version)).base_version)
        return self.versions.contains(version, prereleases=True)


@dataclass
class CoverageMap:
    path: Path
    reference_torch: str
    checked_torch: tuple[str, ...]
    sections: list[Section] = field(default_factory=list)
    names: dict[str, dict[str, NameEntry]] = field(default_factory=dict)

    def clause_ids(self) -> dict[str, list[str]]:
        """Every clause ID the map cites -> where (``section 'title'`` / ``torch.x.name``)."""
        cited: dict[str, list[str]] = {}
        for section in self.sections:
            for clause in section.clauses:
                cited.setdefault(clause, []).append(f"section {section.title!r}")
        for entries in self.names.values():
            for entry in entries.values():
                for clause in entry.clauses:
                    cited.setdefault(clause, []).append(entry.qualified)
        return cited

    def unknown_clauses(self, known: Iterable[str]) -> dict[str, list[str]]:
        """The cited clause IDs that no spec defines -> where the map cites them."""
        known = set(known)
        return {cid: where for cid, where in sorted(self.clause_ids().items()) if cid not in known}

    def missing_names(self, installed: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
        """Per namespace, the public names of ``installed`` that the map does not list."""
        missing = {}
        for namespace, names in installed.items():
            absent = sorted(set(names) - set(self.names.get(namespace, {})))
            if absent:
                missing[namespace] = absent
        return missing

    def absent_names(self, installed: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
        """Per namespace, the names the map lists that ``installed`` lacks (fine: an older or newer torch's)."""
        absent = {}
        for namespace, entries in self.names.items():
            have = set(installed.get(namespace, ()))
            lacking = sorted(set(entries) - have)
            if lacking:
                absent[namespace] = lacking
        return absent

    def version_conflicts(self, installed: Mapping[str, Iterable[str]], torch_version: str) -> list[str]:
        """Entries whose ``versions`` contradict the installed torch: a public name whose range excludes it, and,
        on a line of ``checked_torch`` (where the ranges were read off), a name it lacks whose range admits it."""
        checked = Version(Version(torch_version).base_version) in {Version(v) for v in self.checked_torch}
        conflicts = []
        for namespace, entries in self.names.items():
            have = set(installed.get(namespace, ()))
            for name, entry in sorted(entries.items()):
                public = entry.public_in(torch_version)
                if name in have and not public:
                    conflicts.append(f"{entry.qualified} is public on torch {torch_version}: versions {entry.versions} excludes it")
                elif checked and name not in have and public:
                    conflicts.append(
                        f"{entry.qualified} is not public on torch {torch_version}, a checked line: "
                        f"versions {entry.versions or '(none: every checked line)'} admits it"
                    )
        return conflicts


# --------------------------------------------------------------------------------------------------
# loading


def default_map_path() -> Path:
    """``coverage.toml`` in the specs directory (the checkout's ``specs/`` or the wheel's copy)."""
    from .registry import default_specs_dir

    return default_specs_dir() / "coverage.toml"


def _clause_list(value: object, where: str, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        problems.append(f"{where}: clauses must be a non-empty list of clause IDs, got {value!r}")
        return ()
    bad = [v for v in value if not CLAUSE_ID.match(v)]
    if bad:
        problems.append(f"{where}: not clause IDs: {', '.join(bad)}")
    duplicates = sorted({v for v in value if value.count(v) > 1})
    if duplicates:
        problems.append(f"{where}: clause IDs listed twice: {', '.join(duplicates)}")
    return tuple(value)


def _entry(value: object, where: str, problems: list[str]) -> tuple[tuple[str, ...], str, str, SpecifierSet | None]:
    """(clauses, why, note, versions) of a section or name entry in any of its forms."""
    if isinstance(value, list):
        return _clause_list(value, where, problems), "", "", None
    if isinstance(value, str):
        if not value.startswith(NOT_COVERED) or not value[len(NOT_COVERED):].strip():
            problems.append(f"{where}: a string entry must read {NOT_COVERED!r} followed by why, got {value!r}")
            return (), "?", "", None
        return (), value[len(NOT_COVERED):].strip(), "", None
    if not isinstance(value, dict):
        problems.append(f"{where}: expected clause IDs, 'not covered: why' or a table, got {value!r}")
        return (), "?", "", None
    unknown = sorted(set(value) - {"clauses", "not_covered", "note", "versions", "title", "level"})
    if unknown:
        problems.append(f"{where}: unknown keys {', '.join(unknown)}")
    clauses: tuple[str, ...] = ()
    why = ""
    if ("clauses" in value) == ("not_covered" in value):
        problems.append(f"{where}: needs exactly one of 'clauses' and 'not_covered'")
        why = "?"
    elif "clauses" in value:
        clauses = _clause_list(value["clauses"], where, problems)
    else:
        why = value["not_covered"]
        if not isinstance(why, str) or not why.strip():
            problems.append(f"{where}: not_covered must say why, got {why!r}")
            why = "?"
    note = value.get("note", "")
    if not isinstance(note, str):
        problems.append(f"{where}: note must be a string")
        note = ""
    versions = None
    if "versions" in value:
        try:
            versions = SpecifierSet(str(value["versions"]))
            if not str(value["versions"]).strip():
                raise InvalidSpecifier("empty")
        except InvalidSpecifier:
            problems.append(f"{where}: bad version specifier {value['versions']!r}")
            versions = None
    return clauses, why.strip(), note.strip(), versions


def load_map(path: Path | None = None) -> CoverageMap:
    """Parse and validate the map; :class:`CoverageMapError` lists every structural problem."""
    path = Path(path) if path else default_map_path()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CoverageMapError([f"{path}: cannot read the coverage map ({exc.strerror or exc})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise CoverageMapError([f"{path}: not valid TOML: {exc}"]) from None
    problems: list[str] = []
    unknown = sorted(set(document) - {"reference_torch", "checked_torch", "section", "names"})
    if unknown:
        problems.append(f"{path}: unknown top-level keys {', '.join(unknown)}")
    reference = str(document.get("reference_torch", ""))
    try:
        Version(reference)
    except InvalidVersion:
        problems.append(f"{path}: reference_torch must be a torch version, got {reference!r}")
    checked = document.get("checked_torch", [])
    if not isinstance(checked, list) or not all(isinstance(v, str) for v in checked):
        problems.append(f"{path}: checked_torch must be a list of torch versions")
        checked = []

    sections: list[Section] = []
    raw_sections = document.get("section", [])
    if not isinstance(raw_sections, list) or not raw_sections:
        problems.append(f"{path}: no [[section]] entries (one per heading of {NOTE_URL})")
        raw_sections = []
    titles: set[str] = set()
    for index, raw in enumerate(raw_sections, 1):
        title = raw.get("title") if isinstance(raw, dict) else None
        where = f"{path}: section {index} ({title!r})"
        if not isinstance(title, str) or not title.strip():
            problems.append(f"{where}: needs a title")
            continue
        level = raw.get("level", 1)
        if level not in (1, 2) or (level == 2 and not sections):
            problems.append(f"{where}: level must be 1, or 2 after a level-1 section, got {level!r}")
        if title in titles:
            problems.append(f"{where}: listed twice")
        titles.add(title)
        clauses, why, note, versions = _entry(raw, where, problems)
        if versions is not None:
            problems.append(f"{where}: a section has no versions")
        sections.append(Section(title, level, clauses, why, note))

    names: dict[str, dict[str, NameEntry]] = {}
    raw_names = document.get("names", {})
    if not isinstance(raw_names, dict):
        problems.append(f"{path}: [names] must be a table of namespaces")
        raw_names = {}
    for namespace in raw_names:
        if namespace not in NAMESPACES:
            problems.append(f"{path}: [names.{namespace!r}] is not one of the covered namespaces {', '.join(NAMESPACES)}")
    for namespace in NAMESPACES:
        table = raw_names.get(namespace)
        if not isinstance(table, dict) or not table:
            problems.append(f"{path}: [names.{namespace!r}] is missing or empty")
            continue
        entries = {}
        for name, raw in table.items():
            where = f"{path}: {namespace}.{name}"
            clauses, why, note, versions = _entry(raw, where, problems)
            entries[name] = NameEntry(namespace, name, clauses, why, note, versions)
        names[namespace] = entries
    if problems:
        raise CoverageMapError(problems)
    return CoverageMap(path, reference, tuple(checked), sections, names)


# --------------------------------------------------------------------------------------------------
# introspection (imports torch)


def _defined_by_torch(value: object) -> bool:
    module = getattr(value, "__module__", None)
    return not isinstance(module, str) or module == "torch" or module.startswith(("torch.", "functorch"))


def public_names(namespace: str) -> tuple[str, list[str]]:
    """(how they were found, the public names) of ``namespace`` in the installed torch (module docstring)."""
    import torch

    if namespace in CLASS_EXTRAS:
        cls = {"torch.Tensor": torch.Tensor, "torch.nn.Module": torch.nn.Module}[namespace]
        listed = [n for n in dir(cls) if not n.startswith("_") and any(word in n for word in CLASS_WORDS)]
        extras = [n for n in CLASS_EXTRAS[namespace] if hasattr(cls, n)]
        return "dir (grad/hook + listed)", sorted(set(listed) | set(extras))
    module = importlib.import_module(namespace)
    declared = getattr(module, "__all__", None)
    if declared is not None:
        return "__all__", sorted(set(declared))
    found = []
    for name in dir(module):
        if name.startswith("_"):
            continue
        value = getattr(module, name)
        if isinstance(value, types.ModuleType) or not _defined_by_torch(value):
            continue
        found.append(name)
    return "dir", sorted(found)


def installed_public_names() -> tuple[str, dict[str, list[str]]]:
    """(torch version, namespace -> public names) of the installed torch; a namespace it lacks is empty."""
    import torch

    names = {}
    for namespace in NAMESPACES:
        try:
            names[namespace] = public_names(namespace)[1]
        except ImportError:  # torch.func before 2.0
            names[namespace] = []
    return torch.__version__, names


# --------------------------------------------------------------------------------------------------
# rendering


def _clause_links(clauses: Sequence[str], registry: Mapping | None) -> str:
    parts = []
    for clause in clauses:
        spec = registry.get(clause) if registry is not None else None
        parts.append(f"[{clause}](../specs/{spec.path.name})" if spec is not None else clause)
    return ", ".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _mapping(entry: Section | NameEntry, registry: Mapping | None) -> str:
    text = _clause_links(entry.clauses, registry) if entry.covered else f"not covered: {entry.why}"
    return _cell(text + (f" ({entry.note})" if entry.note else ""))


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def figures(coverage: CoverageMap, torch_version: str | None = None) -> dict[str, tuple[int, int]]:
    """``label -> (covered, total)``: the sections, the subsections, each namespace and all names; names counted
    for ``torch_version`` (default: the map's reference torch)."""
    version = torch_version or coverage.reference_torch
    result = {
        "note sections (top level)": (sum(s.covered for s in coverage.sections if s.level == 1),
                          sum(1 for s in coverage.sections if s.level == 1)),
        "note headings (sections and subsections)": (sum(s.covered for s in coverage.sections), len(coverage.sections)),
    }  # fmt: skip
    covered_all = total_all = 0
    for namespace in NAMESPACES:
        entries = [e for e in coverage.names[namespace].values() if e.public_in(version)]
        covered = sum(e.covered for e in entries)
        result[namespace] = (covered, len(entries))
        covered_all += covered
        total_all += len(entries)
    result["public names"] = (covered_all, total_all)
    return result


def render(
    coverage: CoverageMap,
    registry: Mapping | None = None,
    installed: tuple[str, Mapping[str, Iterable[str]]] | None = None,
) -> str:
    """The map as Markdown (``docs/coverage.md``); with ``installed`` (torch version, public names), names the
    installed torch lacks are marked and its gaps listed."""
    reference = coverage.reference_torch
    figs = figures(coverage)
    lines = [
        "# Coverage map",
        "",
        "<!-- Generated from specs/coverage.toml by `python -m conformance coverage -o docs/coverage.md`; do not "
        "edit (tests/test_coverage_map.py checks that it is current). -->",
        "",
        f"Which parts of the documented autograd surface the clauses state: every heading of the "
        f"[Autograd mechanics]({NOTE_URL}) note and every public name of {len(NAMESPACES)} namespaces, each "
        "mapped to the clauses that cover it or to why none does. A name or section counts as covered when at "
        "least one clause states its behaviour (not necessarily all of it: the notes say where). Public names "
        "are defined in `conformance/spec/coverage.py`; the figures count the names public on torch "
        f"{reference}, the suite's CI pin (names of other torch lines checked — "
        f"{', '.join(coverage.checked_torch)} — are listed with their versions and not counted). \"Public on torch "
        ">=X\" says on which of the checked lines a name is in the namespace's public set (its `__all__`); on "
        "older lines it may exist without being listed there.",
        "",
        "## Figures",
        "",
        f"| what | covered | total | share |",
        "| --- | --- | --- | --- |",
    ]
    for label, (covered, total) in figs.items():
        shown = f"`{label}`" if label in NAMESPACES else label
        lines.append(f"| {shown} | {covered} | {total} | {_percent(covered, total)} |")
    if installed is not None:
        version, names = installed
        lines += ["", f"Installed torch {version}:", ""]
        for label, (covered, total) in figures(coverage, version).items():
            lines.append(f"- {label}: {covered} / {total}")
        missing = coverage.missing_names(names)
        lines.append(
            "- public names missing from the map: "
            + ("; ".join(f"{ns}: {', '.join(n)}" for ns, n in missing.items()) if missing else "none")
        )
    lines += ["", f"## Sections of the note", "", "| section | clauses |", "| --- | --- |"]
    for section in coverage.sections:
        title = _cell(section.title) if section.level == 1 else f"&nbsp;&nbsp;&nbsp;&nbsp;{_cell(section.title)}"
        lines.append(f"| {'**' + title + '**' if section.level == 1 else title} | {_mapping(section, registry)} |")
    absent = coverage.absent_names(installed[1]) if installed is not None else {}
    for namespace in NAMESPACES:
        covered, total = figs[namespace]
        lines += ["", f"## `{namespace}`", "", f"{covered} of {total} public names on torch {reference} covered.", ""]
        lines += ["| name | clauses |", "| --- | --- |"]
        for name in sorted(coverage.names[namespace], key=str.lower):
            entry = coverage.names[namespace][name]
            marks = []
            if entry.versions is not None:
                marks.append(f"public on torch {entry.versions}")
            if name in absent.get(namespace, ()):
                marks.append(f"absent from the installed torch {installed[0]}")  # type: ignore[index]
            shown = f"`{name}`" + (f" ({'; '.join(marks)})" if marks else "")
            lines.append(f"| {shown} | {_mapping(entry, registry)} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# the `coverage` command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autograd-conformance coverage",
        description="Render the coverage map (specs/coverage.toml): which sections of the Autograd mechanics note "
        "and which public autograd names the clauses cover. Without options it prints what docs/coverage.md holds.",
    )
    parser.add_argument("--map", metavar="PATH", help="the coverage map (default: coverage.toml in the specs directory)")
    parser.add_argument("--specs-dir", metavar="DIR", help="the spec files the clause IDs refer to (default: the suite's)")
    parser.add_argument(
        "--installed", action="store_true",
        help="also introspect the installed torch: its figures, the names it lacks and its names missing from the map",
    )  # fmt: skip
    parser.add_argument(
        "--check", action="store_true",
        help="exit 1 when the installed torch has a public name the map lacks or the map cites an unknown clause",
    )  # fmt: skip
    parser.add_argument("-o", "--output", metavar="PATH", help="write the rendering to PATH instead of stdout")
    return parser


def gaps(coverage: CoverageMap, registry: Mapping, names: Mapping[str, Iterable[str]]) -> list[str]:
    """What makes the map incomplete or wrong for this torch and these specs (one line each, saying the fix)."""
    problems = []
    for namespace, missing in coverage.missing_names(names).items():
        problems.append(
            f"public names of {namespace} missing from the map: {', '.join(missing)} — add them under "
            f"[names.{namespace!r}] in {coverage.path} with their clause IDs or \"not covered: why\""
        )
    for clause, where in coverage.unknown_clauses(registry).items():
        problems.append(f"clause {clause} is defined by no spec (cited by {', '.join(where)}) in {coverage.path}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    from .registry import SpecError, load_specs

    try:
        coverage = load_map(Path(args.map) if args.map else None)
        registry = load_specs(Path(args.specs_dir) if args.specs_dir else None)
    except (CoverageMapError, SpecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    installed = installed_public_names() if (args.installed or args.check) else None
    text = render(coverage, registry, installed if args.installed else None)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if args.check:
        problems = gaps(coverage, registry, installed[1])  # type: ignore[index]
        for problem in problems:
            print(f"gap: {problem}", file=sys.stderr)
        return EXIT_GAPS if problems else EXIT_OK
    return EXIT_OK
