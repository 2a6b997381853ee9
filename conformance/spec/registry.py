"""Spec files (Markdown) -> clause registry.

A spec file is Markdown parsed with markdown-it-py; the format is documented in
``specs/README.md``.  Each level-2 heading ``## AREA-N: title`` opens a clause;
inside it the parser takes

* the first block quote as the normative sentence (exactly one paragraph),
* the list items ``Source: ...``, ``Versions: ...``, ``Basis: ...`` and, optionally,
  ``Compiled: not applicable — why`` (the clause cannot be expressed in compiled code),
* the first ``python`` fenced code block as the minimal example.

Anything malformed raises :class:`SpecError` naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from markdown_it import MarkdownIt
from markdown_it.token import Token
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

# What a clause rests on (its ``Basis`` field); defined with the report reader, which needs it without torch:
# ``documented`` -- a PyTorch docs sentence, cited in its Source, states it; ``observed`` -- torch does it,
# but no docs sentence says so (an exception type or a warning no doc gives, an implementation detail, a
# seed article's observation); ``deprecated`` -- it is about an API the docs call deprecated or say will change.
from ..reporting.report_io import BASES

__all__ = [
    "BASES",
    "Clause",
    "SpecError",
    "SpecRegistry",
    "default_specs_dir",
    "load_specs",
    "parse_spec_file",
]

CLAUSE_HEADING = re.compile(r"^(?P<id>[A-Z][A-Z0-9]*(?:-[A-Z][A-Z0-9]*)*-\d+)\s*:\s*(?P<title>\S.*)$")
SEED_NAME = re.compile(r"\b\d{3}_[0-9a-f]{8,}\.txt\b")
URL = re.compile(r"https?://\S+")
FIELD = re.compile(r"^(?P<name>[A-Za-z ]+?)\s*:\s*(?P<value>.*)$", re.S)
COMPILED_VALUE = re.compile(r"^`?not applicable`?\s*[—:-]\s*(?P<why>.+)$", re.S)
BASIS_VALUE = re.compile(r"^`?(?P<basis>[A-Za-z]+)`?(?:\s*[—:-]\s*(?P<note>.*))?$", re.S)


class SpecError(ValueError):
    """One or more malformed clauses; every problem names ``file:line``."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("malformed spec:\n" + "\n".join(f"  {p}" for p in self.problems))


@dataclass(frozen=True)
class Clause:
    id: str
    title: str
    statement: str
    sources: tuple[str, ...]
    versions: SpecifierSet
    example: str
    path: Path
    line: int  # 1-based line of the clause heading
    area: str  # the spec file's title (its level-1 heading)
    basis: str = "documented"  # one of BASES
    basis_note: str = ""  # what the Basis line says after the value ("" if nothing)
    #: why the clause cannot be expressed in code that torch.compile compiles ("" if it can): its ``Compiled`` field
    not_compilable: str = ""

    @property
    def location(self) -> str:
        return f"{self.path.name}:{self.line}"

    def applies_to(self, torch_version: str | Version) -> bool:
        """Whether the clause's version range admits ``torch_version``.

        Local labels (``+cpu``) and pre/dev suffixes are ignored: a nightly
        ``2.16.0.dev20260101`` is judged as 2.16.0.
        """
        version = Version(str(torch_version))
        return self.versions.contains(Version(version.base_version), prereleases=True)

    def not_applicable_in(self, mode: str) -> str | None:
        """Why the clause has no outcome but ``not applicable`` in ``mode`` (a compiled one), or None."""
        if mode == "eager" or not self.not_compilable:
            return None
        return f"{self.id} is not applicable in compiled modes: {self.not_compilable}"


@dataclass
class SpecRegistry(Mapping[str, Clause]):
    clauses: dict[str, Clause] = field(default_factory=dict)

    def __getitem__(self, clause_id: str) -> Clause:
        return self.clauses[clause_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.clauses)

    def __len__(self) -> int:
        return len(self.clauses)

    @classmethod
    def from_directory(cls, directory: Path) -> "SpecRegistry":
        directory = Path(directory)
        files = sorted(p for p in directory.glob("*.md") if p.name.lower() != "readme.md")
        if not files:
            raise SpecError([f"{directory}: no spec files (*.md other than README.md)"])
        problems: list[str] = []
        clauses: dict[str, Clause] = {}
        for path in files:
            try:
                parsed = parse_spec_file(path)
            except SpecError as exc:
                problems.extend(exc.problems)
                continue
            for clause in parsed:
                if clause.id in clauses:
                    first = clauses[clause.id]
                    problems.append(
                        f"{path}:{clause.line}: duplicate clause ID {clause.id} "
                        f"(first defined at {first.path}:{first.line})"
                    )
                else:
                    clauses[clause.id] = clause
        if problems:
            raise SpecError(problems)
        return cls(clauses)


def default_specs_dir() -> Path:
    """The repository's ``specs/`` in a checkout, else the copy shipped in the wheel."""
    package_dir = Path(__file__).resolve().parent.parent  # conformance/
    for candidate in (package_dir.parent / "specs", package_dir / "_specs"):
        if candidate.is_dir():
            return candidate
    raise SpecError([f"no specs directory found next to {package_dir}"])


@lru_cache(maxsize=None)
def load_specs(directory: Path | None = None) -> SpecRegistry:
    return SpecRegistry.from_directory(Path(directory) if directory else default_specs_dir())


# --------------------------------------------------------------------------- parsing

_md = MarkdownIt("commonmark")


def _plain_text(inline: Token) -> str:
    parts = []
    for child in inline.children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts).strip()


def _links(inline: Token) -> list[str]:
    return [str(c.attrs["href"]) for c in inline.children or () if c.type == "link_open"]


@dataclass
class _Draft:
    id: str
    title: str
    line: int
    statement: list[str] = field(default_factory=list)
    statement_line: int | None = None
    fields: dict[str, tuple[Token, int]] = field(default_factory=dict)
    example: str | None = None


def parse_spec_file(path: Path) -> list[Clause]:
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    tokens = _md.parse(text)
    problems: list[str] = []
    drafts: list[_Draft] = []
    area: str | None = None
    current: _Draft | None = None
    depth_blockquote = 0
    in_list_item = False

    for index, token in enumerate(tokens):
        line = (token.map[0] + 1) if token.map else 0
        if token.type == "heading_open":
            inline = tokens[index + 1]
            title = _plain_text(inline)
            if token.tag == "h1":
                area = area or title
                current = None
            elif token.tag == "h2":
                match = CLAUSE_HEADING.match(title)
                if not match:
                    problems.append(
                        f"{path}:{line}: level-2 heading {title!r} has no clause ID; "
                        "expected '## AREA-N: title' (e.g. '## GRADMODE-3: ...')"
                    )
                    current = None
                    continue
                current = _Draft(match["id"], match["title"].strip(), line)
                drafts.append(current)
            continue
        if current is None:
            continue
        if token.type == "blockquote_open":
            depth_blockquote += 1
            if current.statement_line is None:
                current.statement_line = line
        elif token.type == "blockquote_close":
            depth_blockquote -= 1
        elif token.type == "list_item_open":
            in_list_item = True
        elif token.type == "list_item_close":
            in_list_item = False
        elif token.type == "inline" and depth_blockquote and current.statement_line is not None:
            if current.fields or current.example is not None:
                continue  # a later quote is commentary, not the statement
            current.statement.append(_plain_text(token))
        elif token.type == "inline" and in_list_item:
            match = FIELD.match(_plain_text(token))
            if match:
                current.fields.setdefault(match["name"].strip().lower(), (token, line))
        elif token.type == "fence" and current.example is None and token.info.strip().startswith("python"):
            current.example = token.content

    clauses = []
    for draft in drafts:
        clause = _finish(path, area, draft, problems)
        if clause is not None:
            clauses.append(clause)
    if area is None:
        problems.insert(0, f"{path}:1: spec file has no level-1 heading naming its area")
    if problems:
        raise SpecError(problems)
    return clauses


def _finish(path: Path, area: str | None, draft: _Draft, problems: list[str]) -> Clause | None:
    where = f"{path}:{draft.line}: clause {draft.id}"
    before = len(problems)

    if not draft.statement:
        problems.append(f"{where}: missing normative sentence (a '> ...' block quote)")
    elif len(draft.statement) > 1:
        problems.append(f"{where}: the normative block quote must be one paragraph, found {len(draft.statement)}")

    sources: list[str] = []
    if "source" not in draft.fields:
        problems.append(f"{where}: missing 'Source:' (a PyTorch docs URL and/or a seed file name)")
    else:
        token, line = draft.fields["source"]
        sources = _links(token) + URL.findall(_plain_text(token))
        sources += [f"seed:{name}" for name in SEED_NAME.findall(_plain_text(token))]
        sources = list(dict.fromkeys(s.rstrip(".,;)") for s in sources))
        if not sources:
            problems.append(f"{path}:{line}: clause {draft.id}: 'Source:' names neither a URL nor a seed file")

    versions = SpecifierSet()
    if "versions" not in draft.fields:
        problems.append(f"{where}: missing 'Versions:' (a version specifier such as '>=1.13')")
    else:
        token, line = draft.fields["versions"]
        raw = FIELD.match(_plain_text(token))["value"].strip()  # type: ignore[index]
        try:
            if not raw:
                raise InvalidSpecifier("empty")
            versions = SpecifierSet(raw)
        except InvalidSpecifier:
            problems.append(f"{path}:{line}: clause {draft.id}: bad version specifier {raw!r}")

    basis, basis_note = "", ""
    if "basis" not in draft.fields:
        problems.append(f"{where}: missing 'Basis:' (one of {', '.join(BASES)})")
    else:
        token, line = draft.fields["basis"]
        raw = FIELD.match(_plain_text(token))["value"].strip()  # type: ignore[index]
        match = BASIS_VALUE.match(raw)
        if match is None or match["basis"] not in BASES:
            problems.append(
                f"{path}:{line}: clause {draft.id}: unknown basis {raw!r}; expected one of {', '.join(BASES)}"
                " (optionally followed by ' — why')"
            )
        else:
            basis, basis_note = match["basis"], (match["note"] or "").strip()

    not_compilable = ""
    if "compiled" in draft.fields:
        token, line = draft.fields["compiled"]
        raw = FIELD.match(_plain_text(token))["value"].strip()  # type: ignore[index]
        match = COMPILED_VALUE.match(raw)
        if match is None or not match["why"].strip():
            problems.append(
                f"{path}:{line}: clause {draft.id}: 'Compiled:' is {raw!r}; expected 'not applicable — why' "
                "(the reason the clause cannot be expressed in compiled code)"
            )
        else:
            not_compilable = match["why"].strip()

    if draft.example is None:
        problems.append(f"{where}: missing minimal example (a ```python fenced block)")

    if len(problems) != before:
        return None
    return Clause(
        id=draft.id,
        title=draft.title,
        statement=draft.statement[0],
        sources=tuple(sources),
        versions=versions,
        example=draft.example or "",
        path=path,
        line=draft.line,
        area=area or path.stem,
        basis=basis,
        basis_note=basis_note,
        not_compilable=not_compilable,
    )
