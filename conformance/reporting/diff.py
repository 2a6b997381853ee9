"""Compare two conformance reports clause by clause: what regressed, what got fixed, what else changed.

Outcomes are keyed by ``(clause id, target)`` over the targets both reports
requested: a target is a device in a mode, ``cpu`` when eager and
``cpu@compile:aot_eager`` when compiled (schema version 2).  A schema-1 report
holds eager targets only, which are its devices: compared with a schema-2 report
its devices match that report's eager targets, and the compiled ones are not
compared (a note says so).  Every key whose outcome differs falls into exactly
one category, listed in this order:

1. **regressions** -- the new outcome is ``failed`` and the old one was anything
   else, including *no record* or ``not applicable`` (a behaviour newly required
   and broken is a regression), in any mode.  Only these make ``diff`` exit with
   status 1;
2. **no longer compiled** -- in a compiled mode, ``passed`` became ``not compiled``:
   the tests still pass, but no longer through compiled code (a graph break, an
   eager fallback); not blocking, and only counted when a compiled target is compared;
3. **newly known failures** -- ``passed`` became ``known failure`` (the
   expectations file acknowledges it; not blocking);
4. **fixes** -- ``failed`` or ``known failure`` became ``passed``;
5. **applicability changes** -- to or from ``not applicable``, and records that
   exist in only one report (a clause new in NEW or gone from it, or tests added
   or removed for a target);
6. **other changes** -- everything else (``passed`` -> ``skipped``, ``not compiled`` -> ``passed``, ...).

A change in a compiled mode names the mode: its target in the text output, a
``mode`` column in the Markdown one.

A change of a clause that is not ``documented`` (its ``basis`` in the report)
says so: a regression of an ``observed`` clause breaks what torch did, not what
its docs promise ("observed: no docs sentence states it").  Reports written
before clauses carried a basis give no such remark.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .markdown import OUTCOME_SYMBOLS, basis_remark, code_span, md_text, plural, table
from .report_io import (
    EAGER,
    OnTarget,
    ReportError,
    basis_of,
    clause_index,
    detail_of,
    mode_of,
    report_devices,
    torch_version,
)

__all__ = ["CATEGORIES", "Change", "ReportDiff", "check_comparable", "classify", "diff_reports", "render_diff"]

#: ``(key, heading, noun for counts)`` in the order they are printed
CATEGORIES = (
    ("regression", "Regressions", ("regression", "regressions")),
    ("no longer compiled", "No longer compiled", ("no longer compiled", "no longer compiled")),
    ("newly known failure", "Newly known failures", ("newly known failure", "newly known failures")),
    ("fix", "Fixes", ("fix", "fixes")),
    ("applicability", "Newly applicable / no longer applicable", ("applicability change", "applicability changes")),
    ("other", "Other changes", ("other change", "other changes")),
)
#: counted (and listed) only when the diff compares a compiled target: an eager diff reads as before
COMPILED_ONLY_CATEGORIES = ("no longer compiled",)
MARKDOWN_ICONS = {
    "regression": "❌",
    "no longer compiled": "🔁",
    "newly known failure": "⚠️",
    "fix": "✅",
    "applicability": "➖",
    "other": "🔄",
}


@dataclass(frozen=True)
class Change(OnTarget):
    """One ``(clause, target)`` whose outcome differs; ``old``/``new`` are None where there is no record.

    ``target`` is the report's column: the device when eager, ``device@mode`` when compiled.
    """

    clause_id: str
    target: str
    title: str
    old: str | None
    new: str | None
    old_label: str
    new_label: str
    detail: str  # the new record's failure message or reason ("" if none)
    basis: str | None = None  # the clause's basis (NEW's, else OLD's); None in reports without one
    remark: str = ""  # "observed: no docs sentence states it" for a clause that is not documented


@dataclass
class ReportDiff:
    """The comparison of OLD with NEW."""

    old_torch: str
    new_torch: str
    old_suite: str
    new_suite: str
    devices: list[str]  # the targets compared (the devices, in eager-only reports)
    compared: int = 0
    still_failing: int = 0
    changes: dict[str, list[Change]] = field(default_factory=lambda: {key: [] for key, _, _ in CATEGORIES})
    #: the modes whose targets only one report has (not compared): OLD's, NEW's
    old_only_modes: list[str] = field(default_factory=list)
    new_only_modes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Change]:
        return self.changes["regression"]

    @property
    def compiled(self) -> bool:
        """Whether a compiled target (``device@compile:...``) is compared."""
        return any(mode_of(target) != EAGER for target in self.devices)

    def categories(self) -> list[tuple[str, str, tuple[str, str]]]:
        """The categories this diff reports: all, less ``no longer compiled`` when nothing compiled is compared."""
        return [entry for entry in CATEGORIES if self.compiled or entry[0] not in COMPILED_ONLY_CATEGORIES]

    def pair_noun(self) -> str:
        return "clause × target pair" if self.compiled else "clause × device pair"

    def total_changes(self) -> int:
        return sum(len(entries) for entries in self.changes.values())

    def counts_phrase(self) -> str:
        """``"1 regression, 0 newly known failures, 2 fixes, ..."`` (``..., 1 no longer compiled, ...`` when a
        compiled target is compared)."""
        return ", ".join(
            plural(len(self.changes[key]), singular, plural_form)
            for key, _, (singular, plural_form) in self.categories()
        )


def classify(old: str | None, new: str | None) -> str | None:
    """The category of an outcome change (None: unchanged); ``None`` outcomes mean *no record*."""
    if old == new:
        return None
    if new == "failed":
        return "regression"
    if old == "passed" and new == "not compiled":
        return "no longer compiled"
    if old == "passed" and new == "known failure":
        return "newly known failure"
    if old in ("failed", "known failure") and new == "passed":
        return "fix"
    if old is None or new is None or "not applicable" in (old, new):
        return "applicability"
    return "other"


def check_comparable(
    old: Mapping, new: Mapping, old_name: str, new_name: str, *, allow_suite_change: bool = False
) -> list[str]:
    """The targets (devices, when eager) both reports requested; raise :class:`ReportError` when they cannot
    be compared."""
    if old["suite_version"] != new["suite_version"] and not allow_suite_change:
        raise ReportError(
            f"{old_name} (suite {old['suite_version']}) and {new_name} (suite {new['suite_version']}) "
            f"come from different suite versions, whose clauses may mean different things; "
            f"expected the same suite version (pass --allow-suite-change to compare anyway)"
        )
    new_devices = report_devices(new)
    common = [device for device in report_devices(old) if device in new_devices]
    if not common and any(mode_of(t) != EAGER for t in report_devices(old) + new_devices):
        raise ReportError(
            f"{old_name} (targets: {', '.join(report_devices(old)) or 'none'}) and {new_name} "
            f"(targets: {', '.join(new_devices) or 'none'}) share no target; expected at least one device "
            f"in one mode in both (a schema-1 report holds eager targets only)"
        )
    if not common:
        raise ReportError(
            f"{old_name} (devices: {', '.join(report_devices(old)) or 'none'}) and {new_name} "
            f"(devices: {', '.join(new_devices) or 'none'}) share no device; expected at least one device in both"
        )
    return common


def diff_reports(
    old: Mapping, new: Mapping, old_name: str = "OLD", new_name: str = "NEW", *, allow_suite_change: bool = False
) -> ReportDiff:
    """Compare ``old`` with ``new`` (both loaded reports) over the targets both requested."""
    devices = check_comparable(old, new, old_name, new_name, allow_suite_change=allow_suite_change)
    old_clauses, new_clauses = clause_index(old), clause_index(new)
    result = ReportDiff(torch_version(old), torch_version(new), old["suite_version"], new["suite_version"], devices)
    compared_modes = {mode_of(target) for target in devices}
    result.old_only_modes = _modes_of(report_devices(old), compared_modes)
    result.new_only_modes = _modes_of(report_devices(new), compared_modes)
    clause_ids = list(new_clauses) + [cid for cid in old_clauses if cid not in new_clauses]
    for clause_id in clause_ids:
        old_clause, new_clause = old_clauses.get(clause_id), new_clauses.get(clause_id)
        for device in devices:
            old_record = old_clause["devices"].get(device) if old_clause else None
            new_record = new_clause["devices"].get(device) if new_clause else None
            if old_record is None and new_record is None:
                continue
            result.compared += 1
            old_outcome = old_record["outcome"] if old_record else None
            new_outcome = new_record["outcome"] if new_record else None
            if old_outcome == new_outcome == "failed":
                result.still_failing += 1
            category = classify(old_outcome, new_outcome)
            if category is None:
                continue
            if category in COMPILED_ONLY_CATEGORIES and mode_of(device) == EAGER:
                category = "other"  # 'not compiled' on an eager target: no report the suite writes has one
            title = (new_clause or old_clause)["title"]
            described = new_clause if basis_of(new_clause) else old_clause
            result.changes[category].append(
                Change(
                    clause_id=clause_id,
                    target=device,
                    title=title,
                    old=old_outcome,
                    new=new_outcome,
                    old_label=outcome_or_absence(old_outcome, old_clause, "new clause"),
                    new_label=outcome_or_absence(new_outcome, new_clause, "clause gone"),
                    detail=detail_of(new_record),
                    basis=basis_of(described),
                    remark=basis_remark(described),
                )
            )
    return result


def _modes_of(targets: list[str], compared: set[str]) -> list[str]:
    """The modes of ``targets`` that no compared target is in, in order."""
    return [mode for mode in dict.fromkeys(mode_of(t) for t in targets) if mode not in compared]


def outcome_or_absence(outcome: str | None, clause: Mapping | None, missing_clause: str) -> str:
    """The outcome, or why there is none: ``(new clause)``/``(clause gone)`` or ``(no tests)`` on that device."""
    if outcome is not None:
        return outcome
    return f"({missing_clause})" if clause is None else "(no tests)"


# --------------------------------------------------------------------------------------------------
# rendering


def render_diff(diff: ReportDiff, output_format: str = "text") -> str:
    """``diff`` as terminal text or as Markdown (a PR comment / job summary)."""
    if output_format == "markdown":
        return render_markdown(diff)
    if output_format == "text":
        return render_text(diff)
    raise ValueError(f"unknown diff format {output_format!r}; expected 'text' or 'markdown'")


def header_line(diff: ReportDiff) -> str:
    return f"torch {diff.old_torch} → torch {diff.new_torch} on {', '.join(diff.devices)}: {diff.counts_phrase()}"


def context_notes(diff: ReportDiff) -> list[str]:
    notes = []
    if diff.old_suite != diff.new_suite:
        notes.append(f"Suite version changed: {diff.old_suite} → {diff.new_suite} (--allow-suite-change).")
    for which, modes in (("OLD", diff.old_only_modes), ("NEW", diff.new_only_modes)):
        if modes:
            noun = "Mode" if len(modes) == 1 else "Modes"
            notes.append(f"{noun} only in {which}, not compared: {', '.join(modes)}.")
    if diff.total_changes() == 0:
        notes.append(f"No outcome changed: all {plural(diff.compared, diff.pair_noun())} compared are the same.")
    undocumented = [c for c in diff.regressions if c.remark]
    if undocumented:
        by_basis = ", ".join(
            f"{sum(c.basis == basis for c in undocumented)} {basis}"
            for basis in dict.fromkeys(c.basis for c in undocumented)
        )
        notes.append(
            f"Of the regressions, {by_basis} (no docs sentence promises the old behaviour, or the docs say "
            f"the API will change): check whether torch changed it on purpose."
        )
    compiled_regressions = [c for c in diff.regressions if c.mode != EAGER]
    if compiled_regressions:
        modes = ", ".join(dict.fromkeys(c.mode for c in compiled_regressions))
        notes.append(
            f"Of the regressions, {len(compiled_regressions)} in compiled modes ({modes}): "
            f"the clause held there in OLD and fails in NEW."
        )
    if diff.changes["no longer compiled"]:
        modes = ", ".join(dict.fromkeys(c.mode for c in diff.changes["no longer compiled"]))
        notes.append(
            f"No longer compiled ({modes}): the tests still pass, but no longer through compiled code "
            f"(a graph break, an eager fallback); not a regression."
        )
    if diff.still_failing:
        notes.append(f"{plural(diff.still_failing, diff.pair_noun())} failed in both reports (not listed).")
    return notes


def render_text(diff: ReportDiff) -> str:
    lines = [header_line(diff)]
    notes = context_notes(diff)
    everything = [change for entries in diff.changes.values() for change in entries]
    id_width = max((len(c.clause_id) for c in everything), default=0)
    device_width = max((len(c.target) for c in everything), default=0)
    transition_width = max((len(transition(c)) for c in everything), default=0)
    for key, heading, _ in diff.categories():
        entries = diff.changes[key]
        if not entries:
            continue
        lines += ["", f"{heading} ({len(entries)}):"]
        for change in entries:
            detail = f" — {change.detail}" if change.detail else ""
            remark = f" ({change.remark})" if change.remark else ""
            lines.append(
                f"  {change.clause_id:<{id_width}}  {change.target:<{device_width}}  "
                f"{transition(change):<{transition_width}}  {change.title}{remark}{detail}"
            )
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


def transition(change: Change) -> str:
    return f"{change.old_label} → {change.new_label}"


def render_markdown(diff: ReportDiff) -> str:
    icon = "❌" if diff.regressions else "✅"
    counts = md_text(diff.counts_phrase())
    if diff.regressions:  # make the blocking number stand out
        first, _, rest = counts.partition(", ")
        counts = f"**{first}**, {rest}"
    lines = [
        f"## Autograd conformance: torch {md_text(diff.old_torch)} → torch {md_text(diff.new_torch)}",
        "",
        f"{icon} {counts} ({'targets' if diff.compiled else 'devices'} compared: {md_text(', '.join(diff.devices))})",
    ]
    notes = context_notes(diff)
    if notes:
        lines += [""] + [md_text(note) for note in notes]
    for key, heading, _ in diff.categories():
        entries = diff.changes[key]
        if not entries:
            continue
        lines += ["", f"### {MARKDOWN_ICONS[key]} {heading} ({len(entries)})", ""]
        rows = [
            [md_text(change.clause_id), md_text(change.device)]
            + ([md_text(change.mode)] if diff.compiled else [])
            + [
                f"{markdown_outcome(change.old, change.old_label)} → {markdown_outcome(change.new, change.new_label)}",
                md_text(change.title),
                md_text(change.remark or change.basis or ""),
                code_span(change.detail),
            ]
            for change in entries
        ]
        header = ["clause", "device"] + (["mode"] if diff.compiled else []) + ["old → new", "title", "basis"]
        lines += table(header + ["message / reason"], rows)
    return "\n".join(lines) + "\n"


def markdown_outcome(outcome: str | None, label: str) -> str:
    return f"{OUTCOME_SYMBOLS[outcome]} {outcome}" if outcome else f"*{md_text(label)}*"
