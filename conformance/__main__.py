"""``python -m conformance``: the report tools (summary, diff, matrix); see :mod:`conformance.reporting.cli`."""

from .reporting.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
