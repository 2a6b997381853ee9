"""``python -m conformance summary``: the Markdown view of one report.

Meant to be pasted into a GitHub pull-request comment or a job summary: a
heading with the environment and the run's modes, the verdict, then clause
tables grouped by spec area, then the failures.  There is a column per target: a
device in a mode (``cpu``, ``cpu@compile:aot_eager``), each device's eager and
compiled targets side by side.  Targets on which every clause was skipped (the
device was absent) get no column; a note says so instead.  A run with compiled
modes also lists its ``not compiled`` clauses with the reason, and the clauses
its spec says cannot be expressed in compiled code.

The input is a report as returned by :func:`conformance.reporting.report_io.load_report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .markdown import (
    BASIS_LEGEND,
    basis_remark,
    build_description,
    code_span,
    legend,
    md_text,
    outcome_cell,
    outcome_label,
    plural,
    short_git,
    table,
)
from .report_io import (
    BASIS_MEANINGS,
    EAGER,
    basis_of,
    count_outcomes,
    counts_phrase,
    detail_of,
    device_columns,
    device_of,
    first_test,
    fully_skipped_devices,
    mode_of,
    records_on,
    report_modes,
    targets_by_device,
    torch_version,
)

__all__ = ["render_summary"]


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
    lines += [f"Legend: {legend(compiled=has_compiled_modes(report))}", ""]
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
    if has_compiled_modes(report):
        lines += [""] + not_compiled_section(report)
        lines += not_compilable_section(report)
    return "\n".join(lines).rstrip("\n") + "\n"


def has_compiled_modes(report: Mapping) -> bool:
    """Whether the run had a compiled mode (``--mode compile:...``): a schema-1 report never has."""
    return any(mode != EAGER for mode in report_modes(report)) or any(
        mode_of(target) != EAGER for target in device_columns(report)
    )


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
        f"- **Modes**: {modes_description(report)}",
    ]
    expectations = expectations_description(report)
    if expectations:
        lines.append(f"- **Expectations**: {expectations}")
    return lines


def devices_description(report: Mapping) -> str:
    """``"cpu (x86_64), cuda (not available: no CUDA device)"`` from ``environment.device_status``: the
    physical devices of the report's targets, each once."""
    status = report["environment"].get("device_status")
    parts = []
    for device in dict.fromkeys(device_of(target) for target in report["devices"]):
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


def modes_description(report: Mapping) -> str:
    """``"eager, compile:aot_eager"``: the run's modes (``eager`` alone for a schema-1 report)."""
    return ", ".join(md_text(mode) for mode in report_modes(report))


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
    """The targets that get a column: every one but those on which every clause was skipped; each device's
    targets side by side (``cpu``, ``cpu@compile:aot_eager``, ``cuda``, ...)."""
    skipped = fully_skipped_devices(report)
    shown = [device for device in device_columns(report) if device not in skipped]
    return targets_by_device(shown, report_modes(report))


def skipped_devices_note(report: Mapping) -> list[str]:
    skipped = fully_skipped_devices(report)
    if not skipped:
        return []
    groups: dict[tuple[str, str], list[str]] = {}  # a device's targets skipped for one reason: named once
    for target in targets_by_device(list(skipped), report_modes(report)):
        groups.setdefault((device_of(target), skipped[target]), []).append(target)
    parts = [
        ", ".join(md_text(t) for t in targets) + (f" ({md_text(reason)})" if reason else "")
        for (_, reason), targets in groups.items()
    ]
    pronoun = "them" if len(skipped) > 1 else "it"
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


def not_compiled_section(report: Mapping) -> list[str]:
    """A bullet per clause × compiled target whose tests passed without resting on compiled code, with why."""
    entries = [
        failure_bullet(clause, target, record)
        for clause in report["clauses"]
        for target, record in clause["devices"].items()
        if record["outcome"] == "not compiled"
    ]
    lines = ["### Not compiled", ""]
    if not entries:
        return lines + ["None: every compiled pass ran compiled code.", ""]
    intro = (
        "The tests passed, but not in compiled code: a graph break, an eager fallback, or a test that "
        "compiled nothing. The clause is not shown to hold when compiled."
    )
    return lines + [intro, ""] + entries + [""]


def not_compilable_section(report: Mapping) -> list[str]:
    """The clauses ``not applicable`` in a compiled mode although their version range includes the torch
    that ran (``applies``): their spec's ``Compiled`` field says they cannot be expressed in compiled code."""
    entries = []
    for clause in report["clauses"]:
        if clause.get("applies") is False:  # not applicable for the torch version, in every mode
            continue
        compiled = [
            (mode_of(target), record)
            for target, record in clause["devices"].items()
            if mode_of(target) != EAGER and record["outcome"] == "not applicable"
        ]
        if not compiled:
            continue
        modes = [mode for mode, _ in compiled]
        reason = detail_of(compiled[0][1])
        entries.append(
            f"- {outcome_label('not applicable')}: **{md_text(clause['id'])}** in "
            f"{', '.join(md_text(m) for m in dict.fromkeys(modes))} — {md_text(clause['title'])}"
            + (f"; reason: {code_span(reason)}" if reason else "")
        )
    if not entries:
        return []
    return ["### Not applicable when compiled", ""] + entries + [""]


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
