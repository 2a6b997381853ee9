"""``python -m conformance``: read the JSON reports that conformance runs write.

Subcommands:

* ``summary REPORT`` -- the clause-by-clause Markdown table of one run, with its verdict;
* ``diff OLD NEW`` -- the clauses whose outcome changed; exit status 1 when one regressed;
* ``matrix REPORT...`` -- a clause × torch version × target table of several runs (a target is a
  device in a mode: ``cpu``, ``cpu@compile:aot_eager``; ``--modes`` picks the modes shown);
* ``merge REPORT... -o OUT`` -- one report from the shard reports of one run (``pytest --shard I/N``),
  the same as a serial run's apart from ``created``;
* ``ratios RUN [NEW]`` -- the ratios (and memory figures) of a saved benchmark run, or how
  the ratios changed between two runs; with ``--max-increase PCT``, exit 1 when one grew more.

Exit status: 0 on success (``diff``: no regression), 1 when ``diff`` finds a
regression (``ratios``: a ratio grew past ``--max-increase``), 2 on bad input -- a missing or unreadable file, a file that is not a
schema-1 or schema-2 report, reports that cannot be compared or merged -- reported as one
``error: ...`` line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

from ..benchmarks.ratios import (
    BenchmarkFileError,
    compare_ratios,
    load_benchmarks,
    memory_rows,
    ratios,
    render_memory,
    render_ratio_changes,
    render_ratios,
)
from .diff import diff_reports, render_diff
from .matrix import render_matrix
from .merge import merge_reports
from .matrix_html import render_matrix_html
from .report_io import ReportError, load_report, write_text_atomically
from .summary import render_summary

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2

SCHEMA_NOTE = "Report format: docs/report-schema.md (schema versions 1 and 2)."


class OutputError(Exception):
    """The output file could not be written."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m conformance",
        description="Read the JSON reports written by `pytest --conformance-report`.",
        epilog=f"Exit status: 0 ok, 1 diff found a regression, 2 bad input. {SCHEMA_NOTE}",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    summary = commands.add_parser(
        "summary",
        help="Markdown table of one report's clause outcomes, with the verdict",
        description="Print one report as Markdown: environment, verdict, clause tables by area, failures.",
    )
    summary.add_argument("report", metavar="REPORT", help="a conformance report (JSON)")
    add_output_option(summary)
    summary.set_defaults(run=run_summary)

    diff = commands.add_parser(
        "diff",
        help="clauses whose outcome changed between two reports (exit 1 on a regression)",
        description="Compare two reports by (clause, target) over the targets (devices in a mode: cpu, "
        "cpu@compile:aot_eager) both requested. Categories: regressions (new outcome 'failed'), no longer compiled "
        "(a compiled mode's 'passed' became 'not compiled'), newly known failures, fixes, applicability changes, "
        "other changes.",
        epilog="Exit status: 0 no regression, 1 at least one regression, 2 bad input.",
    )
    diff.add_argument("old", metavar="OLD", help="the baseline report (JSON)")
    diff.add_argument("new", metavar="NEW", help="the report to compare with it (JSON)")
    diff.add_argument(
        "--format", choices=("text", "markdown"), default="text", help="output format (default: %(default)s)"
    )
    diff.add_argument(
        "--allow-suite-change",
        action="store_true",
        help="compare reports written by different suite versions (refused by default: clauses may differ)",
    )
    add_output_option(diff)
    diff.set_defaults(run=run_diff)

    matrix = commands.add_parser(
        "matrix",
        help="clause × torch version × target table of several reports",
        description="Tabulate several reports: one column per (torch version, target), sorted by version. A "
        "target is a device in a mode: a report with modes eager and compile:aot_eager has a cpu and a "
        "cpu@compile:aot_eager column, side by side.",
    )
    matrix.add_argument("reports", metavar="REPORT", nargs="+", help="conformance reports (JSON)")
    matrix.add_argument(
        "--modes",
        metavar="MODES",
        action="append",
        help="show the columns of these modes only, comma-separated or repeated: eager, compile:eager, "
        "compile:aot_eager, compile:inductor (default: every mode of the reports)",
    )
    matrix.add_argument(
        "--format",
        choices=("markdown", "html"),
        default="markdown",
        help="output format; html is one self-contained page (default: %(default)s)",
    )
    add_output_option(matrix)
    matrix.set_defaults(run=run_matrix)

    merge = commands.add_parser(
        "merge",
        help="one report from the shard reports of one run (pytest --shard I/N)",
        description="Combine the reports of the shards of one run (pytest --shard I/N in each CI job) into the "
        "report a serial run writes: each test's record from the shard that ran it, clause outcomes, totals, "
        "verdict and stale expectations recomputed, the worst exit status. The order of the reports does not "
        "matter. Refused: reports of different torch versions, suites, hypothesis profiles, schema versions, "
        "devices or modes, and a test that ran in two shards with different outcomes.",
        epilog="Exit status: 0 merged, 2 bad input (reports that are not the shards of one run).",
    )
    merge.add_argument("reports", metavar="REPORT", nargs="+", help="the shard reports (JSON)")
    add_output_option(merge)
    merge.set_defaults(run=run_merge)

    ratio = commands.add_parser(
        "ratios",
        help="ratios within a saved benchmark run, or their change between two runs",
        description="Read pytest-benchmark JSON files (--benchmark-save / --benchmark-json) of the suite's benchmarks. "
        "With one file: each variant's median over its baseline's median, and the memory figures. With two: how "
        "each ratio changed. Ratios hold across machines, so two runs need not come from the same machine.",
        epilog="Exit status: 0 ok, 1 a ratio grew more than --max-increase, 2 bad input.",
    )
    ratio.add_argument("first", metavar="RUN", help="a saved benchmark run (JSON); with NEW, the baseline")
    ratio.add_argument("new", metavar="NEW", nargs="?", help="a later run to compare with RUN (JSON)")
    ratio.add_argument(
        "--max-increase",
        metavar="PCT",
        type=_percentage,
        help="with NEW: exit 1 when a ratio grew by more than PCT percent (e.g. 50 or 50%%)",
    )
    add_output_option(ratio)
    ratio.set_defaults(run=run_ratios)
    return parser


def _percentage(text: str) -> float:
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}") from None
    if not value >= 0 or value == float("inf"):  # also refuses nan, which no change exceeds
        raise argparse.ArgumentTypeError(f"must be a finite, non-negative percentage: {text!r}")
    return value


def add_output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="write the output to PATH (atomically: a temporary file beside it, then renamed) instead of stdout",
    )


# --------------------------------------------------------------------------------------------------
# subcommands: each returns (output text, exit status)


def run_summary(args: argparse.Namespace) -> tuple[str, int]:
    return render_summary(load_report(args.report)), EXIT_OK


def run_diff(args: argparse.Namespace) -> tuple[str, int]:
    old, new = load_report(args.old), load_report(args.new)
    result = diff_reports(old, new, args.old, args.new, allow_suite_change=args.allow_suite_change)
    status = EXIT_REGRESSION if result.regressions else EXIT_OK
    return render_diff(result, args.format), status


def run_matrix(args: argparse.Namespace) -> tuple[str, int]:
    named = [(path, load_report(path)) for path in args.reports]
    render: Callable = render_matrix_html if args.format == "html" else render_matrix
    return render(named, selected_modes(args.modes)), EXIT_OK


def run_merge(args: argparse.Namespace) -> tuple[str, int]:
    result = merge_reports([(path, load_report(path)) for path in args.reports])
    if result.never_ran:
        count = len(result.never_ran)
        print(
            f"note: {count} test{'s' if count != 1 else ''} ran in none of the {len(args.reports)} reports "
            f"(first: {result.never_ran[0]}); a shard report missing?",
            file=sys.stderr,
        )
    return json.dumps(result.report, indent=1) + "\n", EXIT_OK


def selected_modes(values: list[str] | None) -> list[str] | None:
    """``--modes`` values (repeatable, comma-separated), in order without repeats; None when not given."""
    if values is None:
        return None
    modes = list(dict.fromkeys(part.strip() for value in values for part in value.split(",") if part.strip()))
    if not modes:
        raise ReportError("--modes names no mode; expected e.g. --modes eager,compile:aot_eager")
    return modes


def run_ratios(args: argparse.Namespace) -> tuple[str, int]:
    first = load_benchmarks(args.first)
    if args.new is None:
        if args.max_increase is not None:
            raise BenchmarkFileError("--max-increase needs two runs: RUN and NEW")
        lines = [f"Ratios in {args.first} (median of the variant / median of its baseline):", ""]
        lines += render_ratios(ratios(first))
        memory = memory_rows(first)
        if memory:
            lines += ["", "Memory:", ""] + render_memory(memory)
        return "\n".join(lines) + "\n", EXIT_OK
    changes = compare_ratios(ratios(first), ratios(load_benchmarks(args.new)))
    if not changes:
        raise BenchmarkFileError(f"{args.first} and {args.new} have no ratio in common")
    limit = args.max_increase
    flagged = {new.key for _, new, change in changes if limit is not None and change * 100 > limit}
    lines = [f"Ratios: {args.first} -> {args.new}" + (f" (limit: +{limit:g}%)" if limit is not None else ""), ""]
    lines += render_ratio_changes(changes, flagged=flagged)
    if flagged:
        lines += ["", f"{len(flagged)} ratio(s) grew by more than {limit:g}%."]
    return "\n".join(lines) + "\n", EXIT_REGRESSION if flagged else EXIT_OK


# --------------------------------------------------------------------------------------------------
# output


def emit(text: str, output: str | None) -> None:
    if output is None:
        write_stdout(text)
        return
    try:
        write_text_atomically(Path(output), text)
    except OSError as exc:
        raise OutputError(f"{output}: cannot write the output ({exc.strerror or exc})") from None


def write_stdout(text: str) -> None:
    """Print ``text``; on a terminal that cannot encode the outcome symbols, replace them rather than crash."""
    try:
        sys.stdout.write(text)
    except UnicodeEncodeError:
        encoding = getattr(sys.stdout, "encoding", None) or "ascii"
        sys.stdout.write(text.encode(encoding, errors="replace").decode(encoding))
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has already explained
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    try:
        text, status = args.run(args)
        emit(text, args.output)
    except (ReportError, BenchmarkFileError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return status
