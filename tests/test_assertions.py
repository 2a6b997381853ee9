"""Assertion helpers (conformance/testlib/assertions.py): messages name the clause and the expectation."""

from __future__ import annotations

import warnings
from typing import Callable

import pytest
import torch

from conformance.testlib.assertions import (
    assert_close,
    assert_equal,
    assert_grad_mode,
    assert_raises,
    assert_requires_grad,
    assert_does_not_warn,
    assert_succeeds,
    assert_warns,
    fail,
)
from conformance.plugin.devices import available_devices

CLAUSE = "AREA-7"


def violation(check: Callable[[], object]) -> str:
    """Run ``check``, which must raise AssertionError for CLAUSE; return the message."""
    with pytest.raises(AssertionError) as info:
        check()
    message = str(info.value)
    assert message.startswith(f"{CLAUSE} violated: "), message
    return message


def raising_block(raised: BaseException | None, expected: type[BaseException], match: str | None = None) -> Callable[[], None]:
    """A check: ``with assert_raises(expected, match=...)`` around a block raising ``raised`` (or nothing)."""

    def check() -> None:
        with assert_raises(expected, match=match, clause=CLAUSE, what="`op()`"):
            if raised is not None:
                raise raised

    return check


def test_fail_prefixes_the_clause():
    assert violation(lambda: fail(CLAUSE, "something broke")) == f"{CLAUSE} violated: something broke"


def test_assert_equal():
    assert_equal(3, 3, clause=CLAUSE, what="x.dim()")
    message = violation(lambda: assert_equal(2, 3, clause=CLAUSE, what="x.dim()"))
    assert "x.dim() should be 3, but it is 2" in message


@pytest.mark.parametrize("expected", [True, False])
def test_assert_requires_grad(expected):
    matching = torch.ones(2, requires_grad=expected)
    other = torch.ones(2, requires_grad=not expected)
    assert_requires_grad(matching, expected, clause=CLAUSE, what="`y`")
    message = violation(lambda: assert_requires_grad(other, expected, clause=CLAUSE, what="`y`"))
    assert f"`y` should have requires_grad={expected}, but it is {not expected}" in message


def test_assert_grad_mode():
    assert_grad_mode(True, clause=CLAUSE, where="outside any context")
    with torch.no_grad():
        assert_grad_mode(False, clause=CLAUSE, where="inside no_grad")
        message = violation(lambda: assert_grad_mode(True, clause=CLAUSE, where="inside no_grad"))
    assert "inside no_grad, torch.is_grad_enabled() should be True, but it is False" in message


def test_assert_close_passes_on_equal_values_and_nans():
    values = torch.tensor([1.0, float("nan"), -2.0])
    assert_close(values, values.clone(), clause=CLAUSE, what="the gradient")


class OffCpu:
    """Stands in for a tensor on an accelerator: its values are only reachable through ``.detach().cpu()``."""

    def __init__(self, values: torch.Tensor):
        self._values = values

    def detach(self) -> "OffCpu":
        return self

    def cpu(self) -> torch.Tensor:
        return self._values


def test_assert_close_reports_a_missing_tensor_as_a_violation():
    """A gradient that is None (never computed) is a clause violation, not an AttributeError."""
    message = violation(lambda: assert_close(None, torch.tensor([1.0]), clause=CLAUSE, what="x.grad"))
    assert "None" in message


def test_assert_close_compares_on_the_cpu():
    assert_close(OffCpu(torch.tensor([1.0, 2.0])), torch.tensor([1.0, 2.0]), clause=CLAUSE, what="y")
    assert_close(torch.tensor([1.0, 2.0]), OffCpu(torch.tensor([1.0, 2.0])), clause=CLAUSE, what="y")
    violation(lambda: assert_close(OffCpu(torch.tensor([1.0])), torch.tensor([3.0]), clause=CLAUSE, what="y"))


@pytest.mark.parametrize("where", available_devices())
def test_assert_close_accepts_tensors_on_any_available_device(where):
    on_device = torch.tensor([1.0, float("nan")], device=where)
    assert_close(on_device, torch.tensor([1.0, float("nan")]), clause=CLAUSE, what="y")


def test_assert_close_ignores_autograd_history():
    actual = torch.tensor([1.0, 2.0], requires_grad=True) * 1  # a non-leaf requiring grad
    assert_close(actual, torch.tensor([1.0, 2.0]), clause=CLAUSE, what="y")


def test_assert_close_reports_differing_values():
    message = violation(
        lambda: assert_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]), clause=CLAUSE, what="the gradient of x")
    )
    assert "the gradient of x: values differ" in message
    assert "Mismatched elements: 1 / 2" in message


@pytest.mark.parametrize(
    "actual, expected",
    [
        (torch.ones(2), torch.ones(3)),
        (torch.ones(2, dtype=torch.float64), torch.ones(2)),
        (torch.tensor([float("nan")]), torch.tensor([0.0])),
    ],
    ids=["shape", "dtype", "nan-vs-number"],
)
def test_assert_close_requires_matching_shape_dtype_and_nans(actual, expected):
    assert "y: values differ" in violation(lambda: assert_close(actual, expected, clause=CLAUSE, what="y"))


def test_assert_close_passes_tolerances_through():
    assert_close(torch.tensor([1.0]), torch.tensor([1.1]), clause=CLAUSE, what="y", rtol=0, atol=0.2)
    violation(lambda: assert_close(torch.tensor([1.0]), torch.tensor([1.1]), clause=CLAUSE, what="y", rtol=0, atol=0.01))


def test_assert_raises_passes_when_the_block_raises_a_matching_error():
    raising_block(RuntimeError("element 0 of tensors does not require grad"), expected=RuntimeError, match="does not require grad")()
    raising_block(ValueError("any message"), expected=Exception)()


def test_assert_raises_fails_when_nothing_is_raised():
    message = violation(raising_block(None, expected=RuntimeError, match="boom"))
    assert "`op()` should raise RuntimeError matching 'boom', but it did not" in message
    assert "should raise RuntimeError, but it did not" in violation(raising_block(None, expected=RuntimeError))


def test_assert_raises_fails_when_the_message_does_not_match():
    message = violation(raising_block(RuntimeError("something else"), expected=RuntimeError, match="boom"))
    assert "`op()` raised RuntimeError as expected, but its message does not match 'boom': something else" in message


def test_assert_raises_reports_another_exception_type_as_a_violation():
    message = violation(raising_block(ValueError("only one element tensors"), expected=RuntimeError))
    assert "`op()` should raise RuntimeError, but raised ValueError: only one element tensors" in message


def test_assert_raises_lets_non_exceptions_through():
    with pytest.raises(KeyboardInterrupt):
        raising_block(KeyboardInterrupt(), expected=RuntimeError)()


def test_assert_succeeds_reports_an_exception_as_a_violation():
    with assert_succeeds(clause=CLAUSE, what="backward"):
        pass

    def check():
        with assert_succeeds(clause=CLAUSE, what="backward"):
            raise RuntimeError("modified by an inplace operation")

    message = violation(check)
    assert "backward should succeed" in message and "modified by an inplace operation" in message


def _warn(category=UserWarning, message="read .grad of a non-leaf; use retain_grad()"):
    warnings.warn(message, category)


def test_assert_warns_passes_on_a_matching_warning_even_if_seen_before():
    for _ in range(2):  # the default "once per location" filter must not hide the second
        with assert_warns(UserWarning, match="retain_grad", clause=CLAUSE, what="y.grad"):
            _warn()


def test_assert_warns_reports_a_missing_warning():
    def check():
        with assert_warns(UserWarning, clause=CLAUSE, what="reading y.grad"):
            pass

    assert "reading y.grad should emit a UserWarning, but it did not" in violation(check)


def test_assert_warns_reports_a_wrong_category_and_a_wrong_message():
    def wrong_category():
        with assert_warns(UserWarning, clause=CLAUSE, what="y.grad"):
            _warn(DeprecationWarning)

    def wrong_message():
        with assert_warns(UserWarning, match="retain_grad", clause=CLAUSE, what="y.grad"):
            _warn(message="something else")

    assert "DeprecationWarning: read .grad" in violation(wrong_category)
    assert "no message matches 'retain_grad'" in violation(wrong_message)


def test_assert_does_not_warn():
    with assert_does_not_warn(UserWarning, clause=CLAUSE, what="x.grad"):
        warnings.warn("unrelated", DeprecationWarning)

    def check():
        with assert_does_not_warn(UserWarning, clause=CLAUSE, what="x.grad of a leaf"):
            _warn()

    assert "x.grad of a leaf should not emit a UserWarning" in violation(check)
