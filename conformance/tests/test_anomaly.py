"""Anomaly detection: detect_anomaly and set_detect_anomaly.  Spec: specs/anomaly.md.

The NaN-producing programs are drawn (``testlib/anomaly.py``): a value-preserving registry op, one step whose
backward node returns NaN at drawn bad values (``sqrt``/``pow`` of a negative, ``log`` at 0, ``0/0``, ``acos``
beyond 1, ``0 * inf`` where ``exp`` overflowed; masked by ``torch.where`` or direct), and a reduction.  The
program goes through the mode; anomaly detection is entered around it (dynamo does not trace into the
context managers: see ANOMALY-4's Compiled line).  Under AOTAutograd (``compile:aot_eager``) the node
that returns NaN is the compiled region's backward node (``CompiledFunctionBackward``); under ``compile:eager`` the
eager ops' own nodes.
"""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.anomaly import ANOMALY_OFF_CHECKS, ANOMALY_ON, NanCase, anomaly_state_restored, nan_cases
from conformance.testlib.assertions import assert_close, assert_equal, assert_raises, assert_succeeds, assert_warns, fail
from conformance.testlib.forms import BACKWARD_PASSES
from conformance.testlib.strategies import shapes, tensors

NAN_MESSAGE = r"Function '{node}' returned nan values in its \d+th output"


def _gradient(spelling: str, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    returned = BACKWARD_PASSES[spelling](y, [x])
    return returned[0] if returned is not None else x.grad


def _nan_node(case: NanCase, y: torch.Tensor, mode) -> str:
    """The node whose backward returns NaN: the compiled region's node where AOTAutograd compiled the program
    (``compile:aot_eager``, ``compile:inductor``), else the step's own node (eager, and ``compile:eager``, whose
    graph runs the eager ops and records their nodes)."""
    if mode.compiled and y.grad_fn.name().startswith("CompiledFunction"):
        return y.grad_fn.name()
    return case.step.node


def _draw(data, device):
    case = data.draw(nan_cases(device=device), label="program")
    spelling = data.draw(st.sampled_from(sorted(BACKWARD_PASSES)), label="backward spelling")
    return case, spelling


# ----------------------------------------------------------------------------- ANOMALY-1


@pytest.mark.spec("ANOMALY-1")
@pytest.mark.parametrize("form", sorted(ANOMALY_ON))
@given(data=st.data())
def test_nan_in_backward_raises_naming_the_node(device, mode, form, data):
    case, spelling = _draw(data, device)
    program = mode.compile(case.program)
    x = case.leaf()
    with assert_succeeds(clause="ANOMALY-1", what=f"`{spelling}` of a program whose backward returns NaN, without anomaly detection ({mode})\n{case!r}\n"):
        grad = _gradient(spelling, program(x), x)
    assert_equal(bool(torch.isnan(grad).any()), True, clause="ANOMALY-1", what=f"whether x's gradient without anomaly detection has a NaN ({mode})\n{case!r}\n")
    x = case.leaf()
    with anomaly_state_restored(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Anomaly Detection has been enabled", the forward traceback
        with ANOMALY_ON[form]():
            y = program(x)
            node = _nan_node(case, y, mode)
            what = f"`{spelling}` inside `{form}` of a program whose {node} returns NaN ({mode})\n{case!r}\n"
            with assert_raises(RuntimeError, match=NAN_MESSAGE.format(node=re.escape(node)), clause="ANOMALY-1", what=what):
                _gradient(spelling, y, x)


# ----------------------------------------------------------------------------- ANOMALY-2


class Exploding(torch.autograd.Function):
    """A custom Function whose backward raises the exception it was given (``ExplodingBackward``)."""

    @staticmethod
    def forward(ctx, x, error):
        ctx.error = error
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise ctx.error


def exploding_program(x, error):
    return Exploding.apply(x * 2, error).sum()


@pytest.mark.spec("ANOMALY-2")
@given(data=st.data())
def test_failing_backward_warns_with_the_forward_traceback(device, mode, data):
    """Forward and backward inside anomaly detection: the node's failure (NaN, or an exception its backward
    raises: eager only, as a compiled program would run that backward while compiling) warns with the frames
    of the forward call, and the failure itself propagates."""
    form = data.draw(st.sampled_from(sorted(ANOMALY_ON)), label="anomaly detection form")
    kind = data.draw(st.sampled_from(["NaN"] if mode.compiled else ["NaN", "raising backward"]), label="failure")
    spelling = data.draw(st.sampled_from(sorted(BACKWARD_PASSES)), label="backward spelling")
    if kind == "NaN":
        case = data.draw(nan_cases(device=device), label="program")
        run, frame, x = mode.compile(case.program), "program", case.leaf()
        error, match, shown = RuntimeError, "returned nan values", repr(case)
        args = ()
    else:
        x = data.draw(tensors(dtype=st.sampled_from([torch.float32, torch.float64]), shape=shapes(max_dims=2, max_side=3), device=device, requires_grad=True), label="x")
        error = data.draw(st.sampled_from([ValueError, RuntimeError, ZeroDivisionError]), label="exception type")
        message = data.draw(st.sampled_from(["boom", "bad backward", "no gradient here"]), label="exception message")
        run, frame, match, shown = exploding_program, "exploding_program", re.escape(message), f"Exploding.apply(x * 2).sum(), backward raising {error.__name__}({message!r})"
        args = (error(message),)
    with anomaly_state_restored(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Anomaly Detection has been enabled"
        with ANOMALY_ON[form]():
            y = run(x, *args)
            node = _nan_node(case, y, mode) if kind == "NaN" else "ExplodingBackward"
            what = f"`{spelling}` inside `{form}` whose {node} fails ({kind}; {mode})\n{shown}\n"
            pattern = rf"Error detected in {re.escape(node)}\. Traceback of forward call that caused the error:(.|\n)*, in {frame}\b"
            with assert_warns(UserWarning, match=pattern, clause="ANOMALY-2", what=what):
                with assert_raises(error, match=match, clause="ANOMALY-2", what=what):
                    _gradient(spelling, y, x)


# ----------------------------------------------------------------------------- ANOMALY-3


@pytest.mark.spec("ANOMALY-3")
@pytest.mark.parametrize("form", sorted(ANOMALY_OFF_CHECKS))
@given(data=st.data())
def test_check_nan_false_does_not_raise(device, mode, form, data):
    case, spelling = _draw(data, device)
    program = mode.compile(case.program)
    x = case.leaf()
    without = _gradient(spelling, program(x), x)
    x = case.leaf()
    with anomaly_state_restored(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with ANOMALY_OFF_CHECKS[form]():
            state = (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled())
            assert_equal(state, (True, False), clause="ANOMALY-3", what=f"(is_anomaly_enabled(), is_anomaly_check_nan_enabled()) inside `{form}`")
            what = f"`{spelling}` inside `{form}` of a program whose {case.step.node} returns NaN ({mode})\n{case!r}\n"
            with assert_succeeds(clause="ANOMALY-3", what=what):
                grad = _gradient(spelling, program(x), x)
    assert_close(grad, without, clause="ANOMALY-3", what=f"x's gradient (with its NaNs) from {what}vs without anomaly detection", rtol=0, atol=0)


# ----------------------------------------------------------------------------- ANOMALY-4

STATES = st.tuples(st.booleans(), st.booleans())


def _enter(data, label: str):
    """A drawn anomaly context manager and the (enabled, check_nan) state it sets."""
    kind = data.draw(st.sampled_from(["detect_anomaly", "set_detect_anomaly"]), label=f"{label}: form")
    check_nan = data.draw(st.booleans(), label=f"{label}: check_nan")
    if kind == "detect_anomaly":
        return f"detect_anomaly(check_nan={check_nan})", (lambda: torch.autograd.detect_anomaly(check_nan=check_nan)), (True, check_nan)
    enabled = data.draw(st.booleans(), label=f"{label}: mode")
    return f"set_detect_anomaly({enabled}, check_nan={check_nan})", (lambda: torch.autograd.set_detect_anomaly(enabled, check_nan=check_nan)), (enabled, check_nan)


def _state():
    return (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled())


class _Leave(Exception):
    """Raised to leave a block by an exception."""


@pytest.mark.spec("ANOMALY-4")
@given(data=st.data())
def test_context_managers_restore_the_previous_mode(device, mode, data):
    initial = data.draw(STATES, label="(enabled, check_nan) before")
    outer_name, outer, outer_state = _enter(data, "outer")
    nested = data.draw(st.booleans(), label="a nested context manager inside")
    by_exception = data.draw(st.booleans(), label="the block is left by an exception")
    with anomaly_state_restored(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        torch.set_anomaly_enabled(*initial)
        with assert_raises(_Leave, clause="ANOMALY-4", what="the block's own exception") if by_exception else assert_succeeds(clause="ANOMALY-4", what="the block"):
            with outer():
                assert_equal(_state(), outer_state, clause="ANOMALY-4", what=f"the (enabled, check_nan) state inside `with {outer_name}` entered in state {initial}")
                if nested:
                    inner_name, inner, inner_state = _enter(data, "inner")
                    with inner():
                        assert_equal(_state(), inner_state, clause="ANOMALY-4", what=f"the state inside `with {inner_name}` nested in `with {outer_name}`")
                    assert_equal(_state(), outer_state, clause="ANOMALY-4", what=f"the state after leaving `with {inner_name}` nested in `with {outer_name}`")
                if by_exception:
                    raise _Leave()
        left = "by an exception" if by_exception else "normally"
        assert_equal(_state(), initial, clause="ANOMALY-4", what=f"the (enabled, check_nan) state after `with {outer_name}` was left {left}, entered in state {initial}")


@pytest.mark.spec("ANOMALY-4")
@given(data=st.data())
def test_set_detect_anomaly_as_a_function_keeps_its_mode(device, mode, data):
    initial = data.draw(STATES, label="(enabled, check_nan) before")
    enabled, check_nan = data.draw(STATES, label="set_detect_anomaly(mode, check_nan)")
    with anomaly_state_restored(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        torch.set_anomaly_enabled(*initial)
        torch.autograd.set_detect_anomaly(enabled, check_nan=check_nan)
        if _state() != (enabled, check_nan):
            fail("ANOMALY-4", f"after the statement torch.autograd.set_detect_anomaly({enabled}, check_nan={check_nan}) in state {initial}, the state should be {(enabled, check_nan)}, but it is {_state()}")
