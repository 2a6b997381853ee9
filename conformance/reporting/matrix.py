"""``python -m conformance matrix``: several reports side by side, as a Markdown table.

One column per (torch version, target), sorted by torch version; one row per
clause, grouped by spec area; a table of the reports' environments above it and
the totals per outcome below.  :class:`Matrix` is what the Markdown table here
and the HTML page (:mod:`.matrix_html`) both show.  Targets on which every clause
of a report was skipped (the device was absent) get no column.

A target is a device in a mode (schema version 2): a report of a run with modes
``eager`` and ``compile:aot_eager`` on cpu has two columns, ``cpu`` and
``cpu@compile:aot_eager``, side by side; ``modes`` (``matrix --modes``) keeps the
columns of those modes only.  Reports of eager runs only (every schema-1 report)
read exactly as before compiled modes existed.

The inputs are ``(file name, report)`` pairs, the reports as returned by
:func:`conformance.reporting.report_io.load_report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .markdown import (
    OUTCOME_SYMBOLS,
    build_description,
    code_span,
    legend,
    md_text,
    outcome_label,
    plural,
    short_git,
    table,
)
from .report_io import (
    EAGER,
    OnTarget,
    OUTCOMES,
    ReportError,
    clause_sort_key,
    count_outcomes,
    device_columns,
    device_of,
    fully_skipped_devices,
    mode_of,
    records_on,
    report_modes,
    targets_by_device,
    torch_sort_key,
    torch_version,
)

__all__ = ["ENVIRONMENT_COLUMNS", "Column", "Matrix", "matrix_columns", "render_matrix"]

#: the columns of the matrix's table of environments, one row per report
ENVIRONMENT_COLUMNS = ("torch", "git", "build", "Python", "hypothesis profile", "devices", "suite", "verdict", "file")


@dataclass(frozen=True, eq=False)
class Column(OnTarget):
    """One column of the matrix: a report (``source`` names its file) on one target (a device in a mode)."""

    source: str
    report: Mapping
    target: str  # the report's column: ``cpu`` (eager), ``cpu@compile:aot_eager``
    label: str


def matrix_columns(named_reports: Sequence[tuple[str, Mapping]], modes: Sequence[str] | None = None) -> list[Column]:
    """The (torch version, target) columns, sorted by torch version, each device's modes side by side;
    raise on a duplicate pair.  ``modes`` keeps the targets in those modes only (None: every mode)."""
    ordered = sorted(named_reports, key=lambda item: torch_sort_key(torch_version(item[1])))
    per_report = [(source, report, matrix_devices(report, modes)) for source, report in ordered]
    check_modes_shown(named_reports, per_report, modes)
    per_report = [entry for entry in per_report if entry[2]]  # a report in none of ``modes``: no column
    check_no_duplicate_columns(per_report)
    versions = [torch_version(report) for _, report, _ in per_report]
    by_version_only = all(len({device_of(t) for t in targets}) == 1 for _, _, targets in per_report) and len(
        set(versions)
    ) == len(versions)
    columns = []
    for source, report, targets in per_report:
        for target in targets:
            label = torch_version(report) if by_version_only else f"{torch_version(report)} · {device_of(target)}"
            if mode_of(target) != EAGER:
                label += f" · {mode_of(target)}"
            columns.append(Column(source, report, target, label))
    return columns


def matrix_devices(report: Mapping, modes: Sequence[str] | None = None) -> list[str]:
    """A report's targets with records, except those on which every clause was skipped (absent devices),
    each device's targets side by side; with ``modes``, those in these modes only.

    A report with nothing else keeps its skipped targets, and one without records its first target:
    every report gets at least one column (unless ``modes`` leaves none).
    """
    columns = [t for t in device_columns(report) if modes is None or mode_of(t) in modes]
    with_records = [d for d in columns if records_on(report, d)]
    skipped = fully_skipped_devices(report)
    shown = [d for d in with_records if d not in skipped] or with_records or columns[:1]
    return targets_by_device(shown, report_modes(report))


def check_modes_shown(
    named_reports: Sequence[tuple[str, Mapping]],
    per_report: Sequence[tuple[str, Mapping, list[str]]],
    modes: Sequence[str] | None,
) -> None:
    """Raise when one of ``modes`` (``--modes``) is in no report: a typo, or the wrong reports."""
    if modes is None:
        return
    present = {mode_of(t) for _, report in named_reports for t in device_columns(report)}
    missing = [mode for mode in modes if mode not in present]
    if missing or not any(targets for _, _, targets in per_report):
        available = ", ".join(sorted(present, key=lambda m: (m != EAGER, m))) or "none"
        raise ReportError(
            f"no report has a target in mode {', '.join(map(repr, missing or modes))}; "
            f"expected a mode of the reports ({available})"
        )


def check_no_duplicate_columns(per_report: Sequence[tuple[str, Mapping, list[str]]]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for source, report, targets in per_report:
        for target in targets:
            key = (torch_version(report), target)
            if key in seen:
                where, what = (
                    (f"{device_of(target)} in {mode_of(target)}", "device and mode")
                    if mode_of(target) != EAGER
                    else (target, "device")
                )
                raise ReportError(
                    f"{seen[key]} and {source} both report torch {key[0]} on {where}; "
                    f"expected at most one report per torch version and {what}"
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
    return count_outcomes(records_on(column.report, column.target))


@dataclass(frozen=True, eq=False)
class Matrix:
    """Everything both matrix renderings show."""

    columns: list[Column]
    rows: dict[str, list[Mapping]]
    cells: dict[tuple[str, int], Mapping | None]
    totals: list[dict[str, int]]

    @classmethod
    def build(cls, named_reports: Sequence[tuple[str, Mapping]], modes: Sequence[str] | None = None) -> Matrix:
        columns = matrix_columns(named_reports, modes)
        rows = matrix_rows(columns)
        lookups = [{c["id"]: c["devices"].get(col.target) for c in col.report["clauses"]} for col in columns]
        cells = {
            (clause["id"], index): lookups[index].get(clause["id"])
            for clauses in rows.values()
            for clause in clauses
            for index in range(len(columns))
        }
        return cls(columns, rows, cells, [column_totals(column) for column in columns])

    def outcomes_present(self) -> list[str]:
        return [o for o in OUTCOMES if any(totals.get(o) for totals in self.totals)]

    @property
    def compiled(self) -> bool:
        """Whether a column is a compiled target: only then does the legend explain ``not compiled``."""
        return any(column.mode != EAGER for column in self.columns)

    @property
    def side_by_side(self) -> bool:
        """Whether eager and compiled columns are both shown (a device's modes sit next to each other)."""
        return self.compiled and any(column.mode == EAGER for column in self.columns)

    def environment_rows(self) -> list[tuple[str, Mapping, list[str], dict[str, str]]]:
        """``(source, report, shown targets, {skipped target: reason})`` per report, in column order."""
        result = []
        for column in self.columns:
            if any(column.report is entry[1] for entry in result):
                continue
            shown = [c.target for c in self.columns if c.report is column.report]
            hidden = {d: r for d, r in fully_skipped_devices(column.report).items() if d not in shown}
            result.append((column.source, column.report, shown, hidden))
        return result

    def clause_count(self) -> int:
        return sum(len(clauses) for clauses in self.rows.values())


def render_matrix(named_reports: Sequence[tuple[str, Mapping]], modes: Sequence[str] | None = None) -> str:
    """The Markdown clause × (torch version, target) table of several reports (``modes``: those only)."""
    matrix = Matrix.build(named_reports, modes)
    reports = matrix.environment_rows()
    lines = [
        "## Autograd conformance matrix",
        "",
        (
            f"{plural(len(reports), 'report')}, {plural(len(matrix.columns), 'column')}, "
            f"{plural(matrix.clause_count(), 'clause')}; columns sorted by torch version"
            + ("; a device's compiled modes beside its eager column." if matrix.side_by_side else ".")
        ),
        "",
    ]
    env_rows = [matrix_environment_row(source, report, shown, hidden) for source, report, shown, hidden in reports]
    lines += table(list(ENVIRONMENT_COLUMNS), env_rows)
    lines += ["", f"Legend: {legend(compiled=matrix.compiled)}", ""]
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
