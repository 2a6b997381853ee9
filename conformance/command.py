"""``autograd-conformance``: the console script (``python -m conformance`` is the same).

``autograd-conformance run [PYTEST ARGS...]`` runs the *installed* suite with pytest
from any directory; every pytest option passes through (``--device``, ``--mode``,
``-n 2``, ``--expectations``, ``-k``, ``--lf``, ...) and the exit status is
pytest's.  It calls ``pytest.main`` in this process with

* ``-p conformance.plugin``: the plugin, even where pytest's plugin autoloading
  is off (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``);
* ``-c conformance/run.ini``: the suite's own pytest settings (``xfail_strict``,
  ``-rfE``, warning filters), the same as ``[tool.pytest.ini_options]`` in the
  repository; a ``pytest.ini``/``pyproject.toml``/``conftest.py`` of the current
  directory does not apply to the suite;
* ``--rootdir`` = the directory holding the ``conformance`` package
  (``site-packages``, or the checkout of an editable install): the rootdir cannot
  wander to wherever an argument points (``--expectations /elsewhere/x.toml``),
  and node ids read ``conformance/tests/test_x.py::test_y[cpu]`` as in a run from
  the checkout;
* ``-o cache_dir=./.pytest_cache``: ``--lf``/``--ff`` keep their cache in the
  current directory, not in ``site-packages``;
* a filter for pytest's warning that the ``conformance`` package was imported
  before pytest could mark it for assertion rewriting: this command imported it;
  the modules the run imports (plugin, tests, test helpers) are still rewritten.

Without test paths it collects the installed ``conformance/tests``: ``run`` always
ends the command line with that directory, and the plugin drops it where the
user named test paths (so pytest never anchors at the current directory and never
loads a ``conftest.py`` found there); node ids as a report prints them (``conformance/tests/test_detach.py::...``) work as arguments
from any directory (``session.py``, ``conformance_installed_run``).  The report is
written to the current directory (``conformance-report.json``), like relative
``--expectations`` and ``--conformance-report`` paths.

``summary``, ``diff``, ``matrix``, ``ratios`` and ``merge`` are the report tools
(:mod:`conformance.reporting.cli`); their arguments pass through unchanged.
``coverage`` renders the coverage map (:mod:`conformance.spec.coverage`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from . import __version__

__all__ = ["PACKAGE_DIR", "REPORT_COMMANDS", "RUN_INI", "main", "pytest_arguments", "run"]

PACKAGE_DIR = Path(__file__).resolve().parent
#: the pytest configuration ``run`` uses (see the module docstring)
RUN_INI = PACKAGE_DIR / "run.ini"
PLUGIN = "conformance.plugin"
#: the subcommands of :mod:`conformance.reporting.cli`
REPORT_COMMANDS = ("summary", "diff", "matrix", "ratios", "merge")
EXIT_BAD_INPUT = 2
#: a ``-W`` action and message: this process imported the package before ``pytest.main`` (see the docstring)
_IMPORTED_BEFORE_PYTEST = "ignore:Module already imported so cannot be rewritten; conformance"

USAGE = f"""\
usage: autograd-conformance COMMAND [ARGS...]

autograd-conformance {__version__}: a conformance suite for PyTorch's autograd semantics.

commands:
  run [PYTEST ARGS...]   run the installed suite with pytest; pytest's options pass through
                         (--device cpu, --mode compile:aot_eager, -n 2, --expectations FILE, -k ...);
                         the exit status is pytest's; `run --help` lists every option
  summary REPORT         a report's outcomes, clause by clause
  diff OLD NEW           what changed between two reports
  matrix REPORT...       a version/device matrix of reports
  ratios FILE...         benchmark ratios
  merge REPORT...        one report from the reports of shards
  coverage [-o PATH]     the coverage map: the note's sections and the public autograd names the clauses
                         cover (--installed: against the installed torch; --check: exit 1 on a gap)

`autograd-conformance COMMAND --help` describes a command.
"""


def pytest_arguments(args: Sequence[str], cwd: Path | None = None) -> list[str]:
    """The pytest command line ``run`` uses for the user's ``args`` (theirs come last, so they can override)."""
    cache = (cwd or Path.cwd()) / ".pytest_cache"
    cache_off = any(a in ("no:cacheprovider", "-pno:cacheprovider") for a in args)  # the option would be unknown
    return [
        "-p", PLUGIN,
        "-c", str(RUN_INI),
        "--rootdir", str(PACKAGE_DIR.parent),
        *([] if cache_off else ["-o", f"cache_dir={cache}"]),
        "-W", f"{_IMPORTED_BEFORE_PYTEST}:pytest.PytestAssertRewriteWarning",
        *args,
        str(PACKAGE_DIR / "tests"),  # the default test path: dropped where args name others (session.py)
    ]  # fmt: skip


def run(args: Sequence[str]) -> int:
    """Run the installed suite with pytest in this process; pytest's exit status."""
    import pytest

    return int(pytest.main(pytest_arguments(args)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(USAGE, end="", file=sys.stderr)
        return EXIT_BAD_INPUT
    command, rest = argv[0], argv[1:]
    if command in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    if command == "--version":
        print(f"autograd-conformance {__version__}")
        return 0
    if command == "run":
        return run(rest)
    if command in REPORT_COMMANDS:
        from .reporting.cli import main as report_main

        return report_main([command, *rest])
    if command == "coverage":
        from .spec.coverage import main as coverage_main

        return coverage_main(rest)
    print(
        f"error: unknown command {command!r}; commands: run, {', '.join(REPORT_COMMANDS)}, coverage (see --help)",
        file=sys.stderr,
    )
    return EXIT_BAD_INPUT
