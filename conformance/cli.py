"""``python -m conformance``: read the JSON reports that conformance runs write.

Subcommands:

* ``summary REPORT`` -- the clause-by-clause Markdown table of one run, with its verdict;
* ``diff OLD NEW`` -- the clauses whose outcome changed; exit status 1 when one regressed;
* ``matrix REPORT...`` -- a clause × torch version × device table of several runs.

Exit status: 0 on success (``diff``: no regression), 1 when ``diff`` finds a
regression, 2 on bad input -- a missing or unreadable file, a file that is not a
schema-1 report, reports that cannot be compared -- reported as one
``error: ...`` line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

from .diff import diff_reports, render_diff
from .render import render_matrix, render_matrix_html, render_summary
from .report_io import ReportError, load_report, write_text_atomically

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2

SCHEMA_NOTE = "Report format: docs/report-schema.md (schema version 1)."


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
        description="Compare two reports by (clause, device) over the devices both requested. Categories: "
        "regressions (new outcome 'failed'), newly known failures, fixes, applicability changes, other changes.",
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
        help="clause × torch version × device table of several reports",
        description="Tabulate several reports: one column per (torch version, device), sorted by version.",
    )
    matrix.add_argument("reports", metavar="REPORT", nargs="+", help="conformance reports (JSON)")
    matrix.add_argument(
        "--format",
        choices=("markdown", "html"),
        default="markdown",
        help="output format; html is one self-contained page (default: %(default)s)",
    )
    add_output_option(matrix)
    matrix.set_defaults(run=run_matrix)
    return parser


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
    return render(named), EXIT_OK


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
    except (ReportError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return status
