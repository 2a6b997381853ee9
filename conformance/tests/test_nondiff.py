"""Gradients at non-differentiable points.  Spec: specs/nondiff.md.

Each test draws an op in one of its call forms (:mod:`conformance.testlib.nondiff_points`), operands whose values
are distinct and away from every kink, and plants the op's non-differentiable point at drawn elements (a zero, a
tie, a bound, a value outside the domain; at least one element, two tied ones for a tie).  The gradient for a
drawn incoming gradient (never zero) is compared with the reference the clause states, computed from the
operand values with comparisons and closed-form derivatives only.  Elements off the planted points get the
ordinary derivative, so a backward that is wrong anywhere fails too.  The op runs through the mode under test.
"""

from __future__ import annotations

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, fail
from conformance.testlib.modes import Mode
from conformance.testlib.nondiff_points import POINTS, PointCase, _between, point_cases
from conformance.testlib.references import safe_values
from conformance.testlib.strategies import REAL_DTYPES, seeds


def _names(*clauses: str) -> tuple[str, ...]:
    return tuple(point.name for point in POINTS if point.clause in clauses)


def _gradients(case: PointCase, mode: Mode, data, device) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    y = mode.run(case.fn, *case.operands)
    (g,) = safe_values([tuple(y.shape)], data.draw(seeds(), label="seed of the incoming gradient"), y.dtype)
    g = g.to(device)
    return g, torch.autograd.grad(y, case.operands, grad_outputs=g)


def _check(clause: str, names, device, mode, data, reference=None, why: str = "") -> None:
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    case = data.draw(point_cases(names, device=device, dtype=dtype), label="case")
    g, got = _gradients(case, mode, data, device)
    want = (reference or case.point.reference)(case.operands, g)
    for index, (actual, expected) in enumerate(zip(got, want)):
        assert_close(actual, expected, clause=clause,
                     what=f"d/dt{index} of {case.describe()} for the incoming gradient g ({dtype}, {mode}), against {why}\n{case!r}\n  g = {g.tolist()!r}\n")


@pytest.mark.spec("NONDIFF-1")
@given(data=st.data())
def test_concave_kinks_get_the_minimum_norm_supergradient(device, mode, data):
    _check("NONDIFF-1", _names("NONDIFF-1"), device, mode, data,
           why="the super-gradient of minimum norm (g/k to each of k tied minima, 0 at hardtanh's and relu6's upper bound)")


@pytest.mark.spec("NONDIFF-2")
@given(data=st.data())
def test_convex_kinks_get_the_minimum_norm_subgradient(device, mode, data):
    _check("NONDIFF-2", _names("NONDIFF-2"), device, mode, data,
           why="the sub-gradient of minimum norm (g/k to k tied maxima, 0 at the lower bounds, the slope at leaky_relu's 0, 0 for |x| in a norm at 0)")


@pytest.mark.spec("NONDIFF-3")
@given(data=st.data())
def test_max_and_min_over_a_dim_send_a_tie_to_the_returned_index(device, mode, data):
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    case = data.draw(point_cases(_names("NONDIFF-3"), device=device, dtype=dtype), label="case")
    g, got = _gradients(case, mode, data, device)
    (expected,) = case.point.reference(case.operands, g)
    what = f"d/dt0 of {case.describe()} ({dtype}, {mode}) with tied extremes in a row"
    largest = case.point.name.startswith("max")
    indices = (torch.max if largest else torch.min)(case.operands[0].detach(), -1, True).indices
    first = expected.ne(0).to(torch.int64).argmax(-1, keepdim=True)
    assert_close(indices, first, clause="NONDIFF-3", what=f"{what}: the returned index, the first extreme element of each row\n{case!r}\n")
    assert_close(got[0], expected, clause="NONDIFF-3",
                 what=f"{what}: the whole gradient at the returned (first) index, none at the other tied elements\n{case!r}\n  g = {g.tolist()!r}\n")


@pytest.mark.spec("NONDIFF-4")
@given(data=st.data())
def test_sqrt_at_zero_has_an_infinite_gradient(device, mode, data):
    _check("NONDIFF-4", _names("NONDIFF-4"), device, mode, data, why="g * 0.5 / sqrt(x): g * inf at x = 0 (the limit)")


@pytest.mark.spec("NONDIFF-5")
@given(data=st.data())
def test_gradients_where_the_function_is_undefined(device, mode, data):
    _check("NONDIFF-5", _names("NONDIFF-5"), device, mode, data,
           why="the derivative's formula: NaN for sqrt, acos, asin outside their domain, g / (x ln b) for log and log2 of x < 0")


@pytest.mark.spec("NONDIFF-6")
@given(data=st.data())
def test_clamp_passes_the_gradient_at_its_bounds(device, mode, data):
    _check("NONDIFF-6", _names("NONDIFF-6"), device, mode, data, why="g where lo <= x <= hi (the bounds included), 0 outside")


def _open_interval(case_name: str):
    lo, hi = {"clamp_bounds": (-1.0, 1.0), "clamp_min_bound": (-1.0, float("inf")), "clamp_max_bound": (-float("inf"), 1.0)}[case_name]
    return _between(lo, hi, closed=False)


@pytest.mark.spec("NONDIFF-7")
@given(data=st.data())
def test_clamp_at_its_bounds_gets_the_minimum_norm_subgradient(device, mode, data):
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    case = data.draw(point_cases(_names("NONDIFF-6"), device=device, dtype=dtype), label="case")
    g, got = _gradients(case, mode, data, device)
    (expected,) = _open_interval(case.point.name)(case.operands, g)
    assert_close(got[0], expected, clause="NONDIFF-7",
                 what=f"d/dt0 of {case.describe()} ({dtype}, {mode}): g strictly inside the bounds, 0 at the bounds and outside\n{case!r}\n  g = {g.tolist()!r}\n")


@pytest.mark.spec("NONDIFF-8")
@given(data=st.data())
def test_forward_mode_uses_the_same_choice_as_reverse_mode(device, mode, data):
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    case = data.draw(point_cases(_names("NONDIFF-1", "NONDIFF-2", "NONDIFF-3", "NONDIFF-6", "GRADVAL-5"), device=device, dtype=dtype), label="case")
    primals = [t.detach() for t in case.operands]
    tangents = [t.to(device) for t in safe_values([tuple(t.shape) for t in primals], data.draw(seeds(), label="seed of the tangents"), dtype)]
    program = mode.compile(case.fn)
    with fwAD.dual_level():
        out = program(*[fwAD.make_dual(p, t) for p, t in zip(primals, tangents)])
        tangent = fwAD.unpack_dual(out).tangent
    y = program(*case.operands)
    (v,) = safe_values([tuple(y.shape)], data.draw(seeds(), label="seed of the cotangent"), dtype)
    v = v.to(device)
    grads = torch.autograd.grad(y, case.operands, grad_outputs=v)
    what = f"the tangent of {case.describe()} ({dtype}, {mode}) at its non-differentiable point"
    if tangent is None:
        fail("NONDIFF-8", f"{what}: the output of duals should have a tangent, but it has none\n{case!r}\n")
    forward = (v * tangent).sum()
    reverse = sum((grad * t).sum() for grad, t in zip(grads, tangents))
    assert_close(forward, reverse, clause="NONDIFF-8",
                 what=f"{what}: <v, J t> by forward mode against <J^T v, t> with reverse mode's gradient\n{case!r}\n  tangents = {[t.tolist() for t in tangents]!r}\n  v = {v.tolist()!r}\n")
