"""Expected failures render their traceback the cheap way (Python's own format), since nobody reads it.

pytest renders a failing test's traceback when it makes the test's report, even
when the test is an expected failure (``xfail``) whose traceback is never shown:
the report shows the reason only.  Hypothesis renders it too, with the same
``item.repr_failure``, for every failing example it finds.  pytest's default
("long") rendering parses the source file of every frame to show its statement,
and in compiled modes a known failure unwinds through dozens of frames in torch's
largest files (dynamo, AOTAutograd), chained exceptions included.  Measured on
torch 2.13 in ``--mode compile:aot_eager``: 3.2 s per rendering, 58 of 170 s of
``test_detach.py``.  So every ``xfail``-marked test (the expectations file's known
failures are) renders its failures in pytest's ``native`` style, which is
Python's ``traceback`` module: same frames, same exception notes (hypothesis'
failing example and ``@reproduce_failure`` blob), no parsing.  A failure that is
not expected keeps pytest's style, and ``--runxfail`` (which shows expected
failures as failures) turns this off.
"""

from __future__ import annotations

import pytest

__all__ = ["ExpectedFailureTracebacks"]


def _native_repr_failure(excinfo: pytest.ExceptionInfo):
    return excinfo.getrepr(style="native", chain=True)


class ExpectedFailureTracebacks:
    @pytest.hookimpl(trylast=True)  # after the expectations file's known failures are marked xfail
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        if config.option.runxfail:
            return
        for item in items:
            if isinstance(item, pytest.Function) and item.get_closest_marker("xfail") is not None:
                item.repr_failure = _native_repr_failure  # this item only: pytest's report and hypothesis' use it
