"""``python -m conformance matrix --format html``: the matrix as one self-contained HTML page.

The same content as the Markdown matrix (:mod:`.matrix`), cells coloured by
outcome, each with its message or reason as a tooltip.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from .markdown import OUTCOME_SYMBOLS, build_description, legend_outcomes, short_git
from .matrix import ENVIRONMENT_COLUMNS, Matrix
from .report_io import detail_of, torch_version

__all__ = ["render_matrix_html"]

OUTCOME_COLOURS = {
    "passed": "#d7f5dd",
    "failed": "#ffd6d6",
    "known failure": "#fff1c2",
    "not compiled": "#ffe4cc",
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


def render_matrix_html(named_reports: Sequence[tuple[str, Mapping]], modes: Sequence[str] | None = None) -> str:
    """The matrix as one self-contained HTML page: same content, cells coloured by outcome."""
    matrix = Matrix.build(named_reports, modes)
    esc = html.escape
    explained = legend_outcomes(compiled=matrix.compiled)
    style = HTML_STYLE + "".join(
        f"td.{css_class(outcome)} {{ background: {colour}; }}\n"
        for outcome, colour in OUTCOME_COLOURS.items()
        if outcome in explained
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
    parts.append("<p>" + " · ".join(f"{OUTCOME_SYMBOLS[o]} {esc(o)}" for o in explained) + "</p>")
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
