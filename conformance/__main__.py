"""``python -m conformance``: the ``autograd-conformance`` command (``run`` and the report tools); see
:mod:`conformance.command`."""

from .command import main

if __name__ == "__main__":
    raise SystemExit(main())
