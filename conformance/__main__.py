"""``python -m conformance``: the report tools (summary, diff, matrix); see :mod:`conformance.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
