"""Markdown building blocks of the report views (``summary``, ``matrix``, ``diff``).

Escaping (:func:`md_text`, :func:`code_span`), tables, the symbol and word of
each outcome and the legend, the remark on a clause's basis, plurals, and the
plain-text descriptions of a report's torch build that the Markdown and the
HTML views share.  Cells and lines are returned as strings; nothing here reads a
file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .report_io import BASIS_MEANINGS, OUTCOMES, basis_of

__all__ = [
    "BASIS_LEGEND",
    "LEGEND",
    "OUTCOME_SYMBOLS",
    "OUTCOME_WORDS",
    "basis_remark",
    "build_description",
    "legend",
    "legend_outcomes",
    "code_span",
    "md_text",
    "outcome_cell",
    "outcome_label",
    "plural",
    "short_git",
    "table",
]

#: a short symbol per outcome, for table cells
OUTCOME_SYMBOLS = {
    "passed": "✅",
    "failed": "❌",
    "known failure": "⚠️",
    "not compiled": "🔁",
    "not applicable": "➖",
    "skipped": "⏭️",
    "untested": "❔",
}
#: the word shown after the symbol in summary cells
OUTCOME_WORDS = {outcome: outcome for outcome in OUTCOMES} | {"not applicable": "n/a"}



def legend_outcomes(compiled: bool = True) -> list[str]:
    """The outcomes a legend explains, in :data:`OUTCOMES` order: ``not compiled`` only where a compiled
    mode is shown (an eager-only view reads as it did before compiled modes existed)."""
    return [o for o in OUTCOMES if compiled or o != "not compiled"]


def legend(compiled: bool = True) -> str:
    """The legend line of the outcome symbols; ``compiled=False`` leaves out ``not compiled``."""
    return (
        " · ".join(f"{OUTCOME_SYMBOLS[o]} {o}" for o in legend_outcomes(compiled))
        + " · blank: no tests of the clause for that device (or no such clause in that suite)"
    )


#: the legend of every outcome
LEGEND = legend(compiled=True)


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


# --------------------------------------------------------------------------------------------------
# a report's torch build, in words (plain text: the HTML page uses them too)


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
