"""``python -m conformance matrix``: several reports side by side, as a Markdown table.

One column per (torch version, device), sorted by torch version; one row per
clause, grouped by spec area; a table of the reports' environments above it and
the totals per outcome below.  :class:`Matrix` is what the Markdown table here
and the HTML page (:mod:`.matrix_html`) both show.  Devices on which every clause
of a report was skipped (the device was absent) get no column.

The inputs are ``(file name, report)`` pairs, the reports as returned by
:func:`conformance.reporting.report_io.load_report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .markdown import LEGEND, OUTCOME_SYMBOLS, build_description, code_span, md_text, outcome_label, plural, short_git, table
from .report_io import (
    OUTCOMES,
    ReportError,
    clause_sort_key,
    count_outcomes,
    device_columns,
    fully_skipped_devices,
    records_on,
    torch_sort_key,
    torch_version,
)

__all__ = ["ENVIRONMENT_COLUMNS", "Column", "Matrix", "matrix_columns", "render_matrix"]

#: the columns of the matrix's table of environments, one row per report
ENVIRONMENT_COLUMNS = ("torch", "git", "build", "Python", "hypothesis profile", "devices", "suite", "verdict", "file")


@dataclass(frozen=True, eq=False)
class Column:
    """One column of the matrix: a report (``source`` names its file) on one device."""

    source: str
    report: Mapping
    device: str
    label: str


def matrix_columns(named_reports: Sequence[tuple[str, Mapping]]) -> list[Column]:
    """The (torch version, device) columns, sorted by torch version; raise on a duplicate pair."""
    ordered = sorted(named_reports, key=lambda item: torch_sort_key(torch_version(item[1])))
    per_report = [(source, report, matrix_devices(report)) for source, report in ordered]
    check_no_duplicate_columns(per_report)
    versions = [torch_version(report) for _, report, _ in per_report]
    by_version_only = all(len(devices) == 1 for _, _, devices in per_report) and len(set(versions)) == len(versions)
    columns = []
    for source, report, devices in per_report:
        for device in devices:
            label = torch_version(report) if by_version_only else f"{torch_version(report)} · {device}"
            columns.append(Column(source, report, device, label))
    return columns


def matrix_devices(report: Mapping) -> list[str]:
    """A report's devices with records, except those on which every clause was skipped (absent devices).

    A report with nothing else keeps its skipped devices, and one without records its first device:
    every report gets at least one column.
    """
    with_records = [d for d in device_columns(report) if records_on(report, d)]
    skipped = fully_skipped_devices(report)
    return [d for d in with_records if d not in skipped] or with_records or device_columns(report)[:1]


def check_no_duplicate_columns(per_report: Sequence[tuple[str, Mapping, list[str]]]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for source, report, devices in per_report:
        for device in devices:
            key = (torch_version(report), device)
            if key in seen:
                raise ReportError(
                    f"{seen[key]} and {source} both report torch {key[0]} on {device}; "
                    f"expected at most one report per torch version and device"
                )
            seen[key] = source


def matrix_rows(columns: Sequence[Column]) -> dict[str, list[Mapping]]:
    """``{area: [clause, ...]}`` over every report: areas in order of first appearance (newest report
    first), clauses within an area by id number; each clause as described by the newest report having it."""
    newest_first = []
    for column in reversed(columns):
        if not any(column.report is seen for seen in newest_first):
            newest_first.append(column.report)
    clauses: dict[str, Mapping] = {}
    areas: list[str] = []
    for report in newest_first:
        for clause in report["clauses"]:
            clauses.setdefault(clause["id"], clause)
            if clause["area"] not in areas:
                areas.append(clause["area"])
    groups = {area: [] for area in areas}
    for clause_id in sorted(clauses, key=clause_sort_key):
        groups[clauses[clause_id]["area"]].append(clauses[clause_id])
    return groups


def column_totals(column: Column) -> dict[str, int]:
    return count_outcomes(records_on(column.report, column.device))


@dataclass(frozen=True, eq=False)
class Matrix:
    """Everything both matrix renderings show."""

    columns: list[Column]
    rows: dict[str, list[Mapping]]
    cells: dict[tuple[str, int], Mapping | None]
    totals: list[dict[str, int]]

    @classmethod
    def build(cls, named_reports: Sequence[tuple[str, Mapping]]) -> Matrix:
        columns = matrix_columns(named_reports)
        rows = matrix_rows(columns)
        lookups = [{c["id"]: c["devices"].get(col.device) for c in col.report["clauses"]} for col in columns]
        cells = {
            (clause["id"], index): lookups[index].get(clause["id"])
            for clauses in rows.values()
            for clause in clauses
            for index in range(len(columns))
        }
        return cls(columns, rows, cells, [column_totals(column) for column in columns])

    def outcomes_present(self) -> list[str]:
        return [o for o in OUTCOMES if any(totals.get(o) for totals in self.totals)]

    def environment_rows(self) -> list[tuple[str, Mapping, list[str], dict[str, str]]]:
        """``(source, report, shown devices, {skipped device: reason})`` per report, in column order."""
        result = []
        for column in self.columns:
            if any(column.report is entry[1] for entry in result):
                continue
            shown = [c.device for c in self.columns if c.report is column.report]
            hidden = {d: r for d, r in fully_skipped_devices(column.report).items() if d not in shown}
            result.append((column.source, column.report, shown, hidden))
        return result

    def clause_count(self) -> int:
        return sum(len(clauses) for clauses in self.rows.values())


def render_matrix(named_reports: Sequence[tuple[str, Mapping]]) -> str:
    """The Markdown clause × (torch version, device) table of several reports."""
    matrix = Matrix.build(named_reports)
    reports = matrix.environment_rows()
    lines = [
        "## Autograd conformance matrix",
        "",
        (
            f"{plural(len(reports), 'report')}, {plural(len(matrix.columns), 'column')}, "
            f"{plural(matrix.clause_count(), 'clause')}; columns sorted by torch version."
        ),
        "",
    ]
    env_rows = [matrix_environment_row(source, report, shown, hidden) for source, report, shown, hidden in reports]
    lines += table(list(ENVIRONMENT_COLUMNS), env_rows)
    lines += ["", f"Legend: {LEGEND}", ""]
    header = ["clause", "title"] + [md_text(column.label) for column in matrix.columns]
    align = ["---", "---"] + [":-:"] * len(matrix.columns)
    rows: list[list[str]] = []
    blank = [""] * len(matrix.columns)
    for area, clauses in matrix.rows.items():
        rows.append([f"**{md_text(area)}**", ""] + blank)
        for clause in clauses:
            cells = [matrix_symbol(matrix.cells[clause["id"], i]) for i in range(len(matrix.columns))]
            rows.append([md_text(clause["id"]), md_text(clause["title"])] + cells)
    rows.append(["**totals**", ""] + blank)
    for outcome in matrix.outcomes_present():
        rows.append([outcome_label(outcome), ""] + [str(totals.get(outcome, 0)) for totals in matrix.totals])
    lines += table(header, rows, align)
    return "\n".join(lines) + "\n"


def matrix_symbol(record: Mapping | None) -> str:
    return OUTCOME_SYMBOLS[record["outcome"]] if record else ""


def matrix_environment_row(source: str, report: Mapping, shown: list[str], hidden: Mapping[str, str]) -> list[str]:
    env = report["environment"]
    devices = ", ".join(md_text(d) for d in shown) or "none"
    if hidden:
        devices += f" (every clause skipped on {', '.join(md_text(d) for d in hidden)}: not shown)"
    git = short_git(env)
    return [
        md_text(torch_version(report)),
        code_span(git) if git else "",
        md_text(build_description(env)),
        md_text(env.get("python", "")),
        md_text(env.get("hypothesis_profile", "")),
        devices,
        md_text(report["suite_version"]),
        md_text(report["verdict"]),
        code_span(source),
    ]
