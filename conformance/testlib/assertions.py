"""Assertion helpers whose failure messages name the clause and say what was expected.

Every helper takes ``clause=`` (the spec ID the check enforces) and a short
description of *what* was checked, so a failure reads like::

    GRADMODE-1 violated: inside `with torch.no_grad():`, `torch.sin(t0)` should have
    requires_grad=False, but it is True

All helpers hide themselves from tracebacks (``__tracebackhide__``).
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

import torch

__all__ = [
    "assert_close",
    "assert_equal",
    "assert_grad_mode",
    "assert_raises",
    "assert_requires_grad",
    "assert_succeeds",
    "assert_warns",
    "assert_does_not_warn",
    "fail",
]


def fail(clause: str, message: str) -> None:
    __tracebackhide__ = True
    raise AssertionError(f"{clause} violated: {message}")


def assert_equal(actual: Any, expected: Any, *, clause: str, what: str) -> None:
    __tracebackhide__ = True
    if actual != expected:
        fail(clause, f"{what} should be {expected!r}, but it is {actual!r}")


def assert_requires_grad(tensor: torch.Tensor, expected: bool, *, clause: str, what: str) -> None:
    __tracebackhide__ = True
    if tensor.requires_grad is not expected:
        fail(clause, f"{what} should have requires_grad={expected}, but it is {tensor.requires_grad}")


def assert_grad_mode(expected: bool, *, clause: str, where: str) -> None:
    __tracebackhide__ = True
    actual = torch.is_grad_enabled()
    if actual is not expected:
        fail(clause, f"{where}, torch.is_grad_enabled() should be {expected}, but it is {actual}")


def assert_close(actual: torch.Tensor, expected: torch.Tensor, *, clause: str, what: str, **tolerances: Any) -> None:
    """Values compared on the CPU (device-generic), NaNs equal, dtypes and shapes must match."""
    __tracebackhide__ = True
    if actual is None or expected is None:
        fail(clause, f"{what}: expected a tensor, got {'actual' if actual is None else 'expected'} = None")
    try:
        torch.testing.assert_close(actual.detach().cpu(), expected.detach().cpu(), equal_nan=True, **tolerances)
    except AssertionError as exc:
        fail(clause, f"{what}: values differ\n{exc}")


@contextmanager
def assert_raises(
    exception: type[BaseException], *, match: str | None = None, clause: str, what: str
) -> Iterator[None]:
    """``with assert_raises(RuntimeError, match=..., clause=..., what=...): <code that must raise>``."""
    __tracebackhide__ = True
    try:
        yield
    except exception as exc:
        if match is not None and not re.search(match, str(exc)):
            fail(clause, f"{what} raised {type(exc).__name__} as expected, but its message does not match {match!r}: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - the wrong exception type violates the clause too
        fail(clause, f"{what} should raise {exception.__name__}, but raised {type(exc).__name__}: {exc}")
    fail(clause, f"{what} should raise {exception.__name__}" + (f" matching {match!r}" if match else "") + ", but it did not")


@contextmanager
def assert_succeeds(*, clause: str, what: str) -> Iterator[None]:
    """``with assert_succeeds(clause=..., what=...): <code that must not raise>``."""
    __tracebackhide__ = True
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - any exception violates the clause
        fail(clause, f"{what} should succeed, but raised {type(exc).__name__}: {exc}")


@contextmanager
def assert_warns(category: type[Warning], *, match: str | None = None, clause: str, what: str) -> Iterator[None]:
    """``with assert_warns(UserWarning, match=..., clause=..., what=...): <code that must warn>``.

    Records every warning (the "once" filters of the session do not hide repeats).
    """
    __tracebackhide__ = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    matching = [w for w in caught if issubclass(w.category, category)]
    if not matching:
        seen = ", ".join(f"{w.category.__name__}: {w.message}" for w in caught) or "none"
        fail(clause, f"{what} should emit a {category.__name__}, but it did not (warnings seen: {seen})")
    if match is not None and not any(re.search(match, str(w.message)) for w in matching):
        fail(clause, f"{what} emitted {category.__name__} as expected, but no message matches {match!r}: {[str(w.message) for w in matching]}")


@contextmanager
def assert_does_not_warn(category: type[Warning], *, clause: str, what: str) -> Iterator[None]:
    """``with assert_does_not_warn(UserWarning, clause=..., what=...): <code that must not warn>``."""
    __tracebackhide__ = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    unexpected = [w for w in caught if issubclass(w.category, category)]
    if unexpected:
        fail(clause, f"{what} should not emit a {category.__name__}, but it emitted: {[str(w.message) for w in unexpected]}")
