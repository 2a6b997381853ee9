"""Markdown (and HTML) views of conformance reports: ``summary`` of one run, ``matrix`` of several.

Both are meant to be pasted into a GitHub pull-request comment or a job summary:
a heading with the environment, the verdict, then clause tables grouped by spec
area.  Devices on which every clause was skipped (the device was absent) get no
column; a note says so instead.

The inputs are reports as returned by :func:`conformance.reporting.report_io.load_report`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .report_io import (
    BASIS_MEANINGS,
    OUTCOMES,
    ReportError,
    basis_of,
    clause_sort_key,
    count_outcomes,
    counts_phrase,
    detail_of,
    device_columns,
    first_test,
    fully_skipped_devices,
    records_on,
    torch_sort_key,
    torch_version,
)

__all__ = [
    "OUTCOME_SYMBOLS",
    "Column",
    "basis_remark",
    "code_span",
    "counts_phrase",
    "matrix_columns",
    "md_text",
    "outcome_cell",
    "outcome_label",
    "plural",
    "render_matrix",
    "render_matrix_html",
    "render_summary",
    "table",
]

#: a short symbol per outcome, for table cells
OUTCOME_SYMBOLS = {
    "passed": "✅",
    "failed": "❌",
    "known failure": "⚠️",
    "not applicable": "➖",
    "skipped": "⏭️",
    "untested": "❔",
}
#: the word shown after the symbol in summary cells
OUTCOME_WORDS = {outcome: outcome for outcome in OUTCOMES} | {"not applicable": "n/a"}

#: the columns of the matrix's table of environments, one row per report
ENVIRONMENT_COLUMNS = ("torch", "git", "build", "Python", "hypothesis profile", "devices", "suite", "verdict", "file")

LEGEND = (
    " · ".join(f"{OUTCOME_SYMBOLS[o]} {o}" for o in OUTCOMES)
    + " · blank: no tests of the clause for that device (or no such clause in that suite)"
)

# --------------------------------------------------------------------------------------------------
# Markdown helpers

_MARKDOWN_SPECIAL = set("\\`*_[]<>|#")


def md_text(text: str) -> str:
    """``text`` as literal Markdown inline text (safe inside a table cell)."""
    flat = " ".join(str(text).split())
    return "".join("\\" + char if char in _MARKDOWN_SPECIAL else char for char in flat)


def code_span(text: str) -> str:
    """``text`` as an inline code span, safe inside a Markdown table cell (pipes escaped)."""
    flat = " ".join(str(text).split())
    if not flat:
        return ""
    fence = "`"
    while fence in flat:  # a fence longer than any run of backticks in the text
        fence += "`"
    padded = f" {flat} " if flat.startswith("`") or flat.endswith("`") else flat
    escaped = padded.replace("|", "\\|")  # GitHub splits table cells at pipes, even inside code
    return f"{fence}{escaped}{fence}"


def outcome_cell(record: Mapping | None) -> str:
    """``"✅ passed"`` etc.; ``""`` where the clause has no record."""
    if not record:
        return ""
    outcome = record["outcome"]
    return f"{OUTCOME_SYMBOLS[outcome]} {OUTCOME_WORDS[outcome]}"


def outcome_label(outcome: str) -> str:
    """``"✅ passed"`` -- symbol and full outcome name."""
    return f"{OUTCOME_SYMBOLS[outcome]} {outcome}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str] | None = None) -> list[str]:
    """A GitHub-flavoured Markdown table; cells must already be escaped."""
    align = align or ["---"] * len(header)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def basis_remark(clause: Mapping | None) -> str:
    """``"observed: no docs sentence states it"`` for a clause that is not ``documented``; ``""`` otherwise
    (and for reports written before clauses carried a basis)."""
    basis = basis_of(clause)
    if basis is None or basis == "documented":
        return ""
    return f"{basis}: {BASIS_MEANINGS[basis]}"


BASIS_LEGEND = "Basis: " + " · ".join(f"{basis}: {meaning}" for basis, meaning in BASIS_MEANINGS.items())


def plural(number: int, singular: str, plural_form: str | None = None) -> str:
    return f"{number} {singular if number == 1 else (plural_form or singular + 's')}"


def build_description(environment: Mapping) -> str:
    """``"CUDA 12.1, cuDNN 8902"``, ``"ROCm 6.0"`` or ``"CPU build"``."""
    if environment.get("torch_cuda"):
        cudnn = f", cuDNN {environment['cudnn']}" if environment.get("cudnn") else ""
        return f"CUDA {environment['torch_cuda']}{cudnn}"
    if environment.get("torch_hip"):
        return f"ROCm {environment['torch_hip']}"
    return "CPU build"


def short_git(environment: Mapping) -> str:
    commit = environment.get("torch_git")
    return str(commit)[:12] if commit else ""


def hypothesis_description(environment: Mapping) -> str:
    """``"profile `ci`, seed `1234`"``, ``"..., derandomized"``, or ``"..., random seed"`` (neither)."""
    parts = [f"profile {code_span(environment.get('hypothesis_profile') or 'unknown')}"]
    seed = environment.get("hypothesis_seed")
    if seed is not None:
        parts.append(f"seed {code_span(str(seed))}")
    if environment.get("hypothesis_derandomize"):
        parts.append("derandomized")
    elif seed is None:
        parts.append("random seed")
    version = f" (hypothesis {md_text(environment['hypothesis'])})" if environment.get("hypothesis") else ""
    return ", ".join(parts) + version


def group_by_area(clauses: Sequence[Mapping]) -> dict[str, list[Mapping]]:
    """``{area: [clause, ...]}``, areas in order of first appearance, clauses in their given order."""
    groups: dict[str, list[Mapping]] = {}
    for clause in clauses:
        groups.setdefault(clause["area"], []).append(clause)
    return groups


# --------------------------------------------------------------------------------------------------
# summary


def area_heading(area: str, clauses: Sequence[Mapping]) -> str:
    """The spec file's title where the report has it (``area_title``), else its stem."""
    title = clauses[0].get("area_title") if clauses else None
    return f"{title} ({area}.md)" if title else area


def render_summary(report: Mapping) -> str:
    """The Markdown summary of one report: environment, verdict, clause tables by area, failures."""
    columns = shown_devices(report)
    lines = summary_heading(report)
    lines += ["", verdict_line(report), ""]
    lines += skipped_devices_note(report)
    lines += [f"Legend: {LEGEND}", ""]
    with_basis = any(basis_of(c) for c in report["clauses"])  # older reports carry no basis: no column
    if with_basis:
        lines += [f"{BASIS_LEGEND}.", "", basis_counts_line(report), ""]
    for area, clauses in group_by_area(report["clauses"]).items():
        lines += [f"### {md_text(area_heading(area, clauses))}", ""]
        rows = [
            [md_text(c["id"]), md_text(c["title"])]
            + ([md_text(basis_of(c) or "")] if with_basis else [])
            + [outcome_cell(c["devices"].get(d)) for d in columns]
            for c in clauses
        ]
        lines += table(["clause", "title"] + (["basis"] if with_basis else []) + [md_text(d) for d in columns], rows)
        lines.append("")
    lines += failures_section(report)
    return "\n".join(lines).rstrip("\n") + "\n"


def basis_counts_line(report: Mapping) -> str:
    """``"Clauses by basis: 100 documented, 15 observed, 3 deprecated."``"""
    counts = {basis: sum(basis_of(c) == basis for c in report["clauses"]) for basis in BASIS_MEANINGS}
    return "Clauses by basis: " + ", ".join(f"{n} {basis}" for basis, n in counts.items() if n) + "."


def summary_heading(report: Mapping) -> list[str]:
    env = report["environment"]
    build = md_text(build_description(env))
    git = f", git {code_span(short_git(env))}" if short_git(env) else ""
    debug = ", debug build" if env.get("torch_debug") else ""
    torch_line = f"{md_text(torch_version(report))}, {build}{git}{debug}"
    python = md_text(env.get("python", "unknown"))
    implementation = f" ({md_text(env['python_implementation'])})" if env.get("python_implementation") else ""
    platform = f" on {md_text(env['platform'])}" if env.get("platform") else ""
    suite = f"{md_text(report['suite_version'])}"
    created = f", report written {md_text(report['created'])}" if report.get("created") else ""
    exit_status = f", pytest exit status {report['exit_status']}" if "exit_status" in report else ""
    lines = [
        f"## Autograd conformance: torch {md_text(torch_version(report))} ({build})",
        "",
        f"- **torch**: {torch_line}",
        f"- **Python**: {python}{implementation}{platform}",
        f"- **Suite**: {suite}{created}{exit_status}",
        f"- **Hypothesis**: {hypothesis_description(env)}",
        f"- **Devices**: {devices_description(report)}",
    ]
    expectations = expectations_description(report)
    if expectations:
        lines.append(f"- **Expectations**: {expectations}")
    return lines


def devices_description(report: Mapping) -> str:
    """``"cpu (x86_64), cuda (not available: no CUDA device)"`` from ``environment.device_status``."""
    status = report["environment"].get("device_status")
    parts = []
    for device in report["devices"]:
        entry = status.get(device) if isinstance(status, dict) else None
        if not isinstance(entry, dict):
            parts.append(md_text(device))
        elif entry.get("available"):
            name = f" ({md_text(entry['name'])})" if entry.get("name") else ""
            parts.append(f"{md_text(device)}{name}")
        else:
            reason = f" ({md_text(entry['reason'])})" if entry.get("reason") else ""
            parts.append(f"{md_text(device)}: not available{reason}")
    return ", ".join(parts) or "none"


def expectations_description(report: Mapping) -> str:
    expectations = report.get("expectations")
    if not isinstance(expectations, dict) or not expectations.get("path"):
        return ""
    applied = len(expectations.get("applied") or [])
    stale = len(expectations.get("stale") or [])
    return f"{code_span(expectations['path'])}: {plural(applied, 'entry', 'entries')} in force, {stale} stale"


def verdict_line(report: Mapping) -> str:
    """``**Verdict: conforms** — cpu: 104 passed, 1 known failure; cuda: 108 skipped``."""
    per_device = [
        f"{md_text(device)}: {counts_phrase(count_outcomes(records_on(report, device)))}"
        for device in device_columns(report)
    ]
    return f"**Verdict: {report['verdict']}** — " + "; ".join(per_device)


def shown_devices(report: Mapping) -> list[str]:
    """The devices that get a column: every one but those on which every clause was skipped."""
    skipped = fully_skipped_devices(report)
    return [device for device in device_columns(report) if device not in skipped]


def skipped_devices_note(report: Mapping) -> list[str]:
    skipped = fully_skipped_devices(report)
    if not skipped:
        return []
    parts = [f"{md_text(d)}" + (f" ({md_text(reason)})" if reason else "") for d, reason in skipped.items()]
    pronoun = "them" if len(parts) > 1 else "it"
    return [f"*Every clause was skipped on {', '.join(parts)}: no column for {pronoun}.*", ""]


def failures_section(report: Mapping) -> list[str]:
    """A bullet per failed / known-failure clause × device: message or reason, and the first test."""
    entries = []
    for wanted in ("failed", "known failure"):
        for clause in report["clauses"]:
            for device, record in clause["devices"].items():
                if record["outcome"] == wanted:
                    entries.append(failure_bullet(clause, device, record))
    lines = ["### Failures", ""]
    if not entries:
        return lines + ["None: no clause failed, and none is a known failure."]
    return lines + entries


def failure_bullet(clause: Mapping, device: str, record: Mapping) -> str:
    detail = detail_of(record)
    what = "message" if record["outcome"] == "failed" else "reason"
    remark = basis_remark(clause)
    parts = [
        (
            f"- {outcome_label(record['outcome'])}: **{md_text(clause['id'])}** on {md_text(device)}"
            + (f" ({md_text(remark)})" if remark else "")
            + f" — {md_text(clause['title'])}"
        )
    ]
    parts.append(f"{what}: {code_span(detail)}" if detail else f"no {what} recorded")
    test = first_test(record)
    if test:
        parts.append(f"first test: {code_span(test)}")
    return parts[0] + "; " + "; ".join(parts[1:])


# --------------------------------------------------------------------------------------------------
# matrix


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


# --------------------------------------------------------------------------------------------------
# matrix as a static HTML page

OUTCOME_COLOURS = {
    "passed": "#d7f5dd",
    "failed": "#ffd6d6",
    "known failure": "#fff1c2",
    "not applicable": "#eeeeee",
    "skipped": "#e3ecff",
    "untested": "#f3e3ff",
}

HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; }
th { background: #f6f8fa; }
td.cell { text-align: center; }
tr.area th { text-align: left; background: #eaeef2; }
"""


def render_matrix_html(named_reports: Sequence[tuple[str, Mapping]]) -> str:
    """The matrix as one self-contained HTML page: same content, cells coloured by outcome."""
    matrix = Matrix.build(named_reports)
    esc = html.escape
    style = HTML_STYLE + "".join(
        f"td.{css_class(outcome)} {{ background: {colour}; }}\n" for outcome, colour in OUTCOME_COLOURS.items()
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Autograd conformance matrix</title>',
        f"<style>{style}</style></head><body>",
        "<h1>Autograd conformance matrix</h1>",
        "<table><tr>" + "".join(f"<th>{html.escape(heading)}</th>" for heading in ENVIRONMENT_COLUMNS) + "</tr>",
    ]
    for source, report, shown, hidden in matrix.environment_rows():
        env = report["environment"]
        devices = ", ".join(shown) + (f" (every clause skipped on {', '.join(hidden)}: not shown)" if hidden else "")
        cells = [
            torch_version(report),
            short_git(env),
            build_description(env),
            str(env.get("python", "")),
            str(env.get("hypothesis_profile", "")),
            devices,
            report["suite_version"],
            report["verdict"],
            source,
        ]
        parts.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in cells) + "</tr>")
    parts.append("</table>")
    parts.append("<p>" + " · ".join(f"{OUTCOME_SYMBOLS[o]} {esc(o)}" for o in OUTCOMES) + "</p>")
    parts.append(
        "<table><tr><th>clause</th><th>title</th>"
        + "".join(f"<th>{esc(column.label)}</th>" for column in matrix.columns)
        + "</tr>"
    )
    span = len(matrix.columns) + 2
    for area, clauses in matrix.rows.items():
        parts.append(f'<tr class="area"><th colspan="{span}">{esc(area)}</th></tr>')
        for clause in clauses:
            cells = "".join(html_cell(matrix.cells[clause["id"], i]) for i in range(len(matrix.columns)))
            parts.append(f"<tr><td>{esc(clause['id'])}</td><td>{esc(clause['title'])}</td>{cells}</tr>")
    parts.append(f'<tr class="area"><th colspan="{span}">totals</th></tr>')
    for outcome in matrix.outcomes_present():
        counts = "".join(f'<td class="cell">{totals.get(outcome, 0)}</td>' for totals in matrix.totals)
        parts.append(f"<tr><td>{OUTCOME_SYMBOLS[outcome]} {esc(outcome)}</td><td></td>{counts}</tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts) + "\n"


def css_class(outcome: str) -> str:
    return "o-" + outcome.replace(" ", "-")


def html_cell(record: Mapping | None) -> str:
    if not record:
        return '<td class="cell"></td>'
    outcome = record["outcome"]
    tooltip = outcome + (f": {detail_of(record)}" if detail_of(record) else "")
    return f'<td class="cell {css_class(outcome)}" title="{html.escape(tooltip)}">{OUTCOME_SYMBOLS[outcome]}</td>'
