"""``python -m conformance``: the ``autograd-conformance`` command (``run`` and the report tools); see
:mod:`conformance.command`.  Importing this module imports nothing else of the suite (the report tools' promise:
no torch, no plugin)."""

from __future__ import annotations

from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from .command import main as command_main

    return command_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
