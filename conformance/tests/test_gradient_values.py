"""Gradient values against independent references.  Spec: specs/gradient_values.md.

Every other area checks *how* autograd records and delivers gradients; these clauses check that the numbers are
the derivatives: reverse mode and forward mode against finite differences (``torch.autograd.gradcheck``, slow and
fast mode, and the suite's own central differences of the eager program), second order against finite differences
of the first (``gradgradcheck``), and the documented choice at non-differentiable points.

Each op-registry clause has an exhaustive sweep (every form of every registry op, on sample shapes, with fixed
values: a wrong derivative of one op form fails it whatever the profile) and a property test drawing the op, the
form, the shapes and the values.  Operands come from :func:`conformance.testlib.references.op_cases`: float64,
all values distinct and away from 0 and +-1, so no element is at a kink of the registry's piecewise ops.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close
from conformance.testlib.graphs import Graph, graphs
from conformance.testlib.modes import Mode, keeping_graphs_allowed
from conformance.testlib.ops import OPS, OpForm, all_forms, ops_by_name
from conformance.testlib.references import OpCase, agreeing, agrees_with_finite_differences, op_cases, safe_values
from conformance.testlib.strategies import REAL_DTYPES, seeds, shapes, vacuous

#: first-operand shapes the sweep tries each form on (those the op accepts); in a compiled mode, the first accepted only
SWEEP_SHAPES = [(2, 2), (3,), ()]


def _sweep_cases(form: OpForm, device: str, compiled: bool) -> list[OpCase]:
    """Fixed cases for one form: each accepted first-operand shape, with a same-shape partner and (for broadcasting
    binary ops) a broadcast one; values from :func:`safe_values` with a fixed seed.  In a compiled mode, the first
    case only (the property tests draw the others)."""
    op = form.op
    cases = []
    for shape in SWEEP_SHAPES:
        if not op.applicable(torch.empty(shape)):
            continue
        if op.arity == 1:
            operand_shapes = [[shape]]
        elif op.partner.__name__ == "_vectors":
            operand_shapes = [[shape, (2,)]]
        elif op.partner.__name__ == "_broadcastable":
            operand_shapes = [[shape, shape]] + ([[shape[1:], shape]] if shape else [])
        else:
            operand_shapes = [[shape, shape]]
        for seed, shapes_ in enumerate(operand_shapes[:1] if compiled else operand_shapes):
            values = safe_values(shapes_, seed)
            cases.append(OpCase(form, tuple(v.to(device).requires_grad_(True) for v in values)))
        if compiled:  # one case: each new shape is a recompilation (about 0.1 s with aot_eager)
            break
    assert cases, f"no sweep shape applies to {form.id}: extend SWEEP_SHAPES"
    return cases


def _derivative(case: OpCase, mode: Mode) -> str:
    return f"d/d({', '.join(case.names)}) of {case.describe()} ({mode})"


# ---------------------------------------------------------------------------------------------- GRADVAL-1


@pytest.mark.spec("GRADVAL-1")
@pytest.mark.parametrize("form", all_forms(), ids=lambda form: form.id)
def test_each_op_form_reverse_mode_agrees_with_finite_differences(device, mode, form):
    """Every form of every registry op, on the sample shapes: gradcheck in slow mode (the full Jacobian, one
    backward per output element) on the first, and in fast mode (a random projection ``v^T J u``) on each."""
    program = mode.compile(form.fn)
    for index, case in enumerate(_sweep_cases(form, device, mode.compiled)):
        for fast in (False, True) if index == 0 else (True,):
            agrees_with_finite_differences(program, case.operands, clause="GRADVAL-1", fast_mode=fast,
                                           what=f"{_derivative(case, mode)} by reverse mode")


@pytest.mark.spec("GRADVAL-1")
@given(data=st.data())
def test_reverse_mode_agrees_with_finite_differences(device, mode, data):
    op = data.draw(st.sampled_from([op for op in OPS if op.compiles_whole or not mode.compiled]), label="op")
    case = data.draw(op_cases(op, device=device), label="case")
    fast = data.draw(st.booleans(), label="gradcheck fast_mode")
    agrees_with_finite_differences(mode.compile(case.form.fn), case.operands, clause="GRADVAL-1", fast_mode=fast,
                                   what=f"{_derivative(case, mode)} by reverse mode")


# ---------------------------------------------------------------------------------------------- GRADVAL-2


@pytest.mark.spec("GRADVAL-2")
@pytest.mark.parametrize("form", all_forms(), ids=lambda form: form.id)
def test_each_op_form_forward_mode_agrees_with_finite_differences(device, mode, form):
    """Forward mode alone (``check_forward_ad=True, check_backward_ad=False``): the tangents ``J u`` of dual
    inputs against finite differences, the full Jacobian (slow, on the first sample) and one random direction
    (fast, on each)."""
    program = mode.compile(form.fn)
    for index, case in enumerate(_sweep_cases(form, device, mode.compiled)):
        for fast in (False, True) if index == 0 else (True,):
            agrees_with_finite_differences(program, case.operands, clause="GRADVAL-2", fast_mode=fast, forward=True,
                                           what=f"{_derivative(case, mode)} by forward mode")


@pytest.mark.spec("GRADVAL-2")
@given(data=st.data())
def test_forward_mode_agrees_with_finite_differences(device, mode, data):
    op = data.draw(st.sampled_from([op for op in OPS if op.compiles_whole or not mode.compiled]), label="op")
    case = data.draw(op_cases(op, device=device), label="case")
    fast = data.draw(st.booleans(), label="gradcheck fast_mode")
    agrees_with_finite_differences(mode.compile(case.form.fn), case.operands, clause="GRADVAL-2", fast_mode=fast, forward=True,
                                   what=f"{_derivative(case, mode)} by forward mode")


# ---------------------------------------------------------------------------------------------- GRADVAL-3

EPS = 1e-6  # gradcheck's default step
#: gradcheck's default tolerances
TOLERANCES = {"rtol": 1e-3, "atol": 1e-5}


def _last(graph: Graph):
    def program(*leaves):
        return graph.program(*leaves)[-1]

    return program


def _finite_difference_gradients(fn, leaves: list[torch.Tensor], v: torch.Tensor) -> list[torch.Tensor]:
    """Central differences of ``<v, fn(*leaves)>`` with respect to every element of every leaf (eager, no grad)."""
    base = [leaf.detach().clone() for leaf in leaves]
    gradients = []
    with torch.no_grad():
        for index, leaf in enumerate(base):
            gradient = torch.zeros_like(leaf)
            flat_gradient, flat_leaf = gradient.view(-1), leaf.view(-1)
            for k in range(leaf.numel()):
                value = flat_leaf[k].item()
                flat_leaf[k] = value + EPS
                plus = (v * fn(*base)).sum()
                flat_leaf[k] = value - EPS
                minus = (v * fn(*base)).sum()
                flat_leaf[k] = value
                flat_gradient[k] = (plus - minus) / (2 * EPS)
            gradients.append(gradient)
    return gradients


def _small_graphs(device, mode, **kwargs):
    return graphs(device=device, requires_grad=True, dtype=torch.float64, mode=mode, base_shape=shapes(max_dims=2, min_side=1, max_side=3), **kwargs)


@pytest.mark.spec("GRADVAL-3")
@given(data=st.data())
def test_program_reverse_mode_agrees_with_finite_differences_of_the_eager_program(device, mode, data):
    """A drawn program's output, contracted with a drawn ``v``: each leaf's gradient by reverse mode through the
    program (compiled in a compiled mode) against central differences of the same program run eagerly."""
    graph = data.draw(_small_graphs(device, mode), label="graph")
    eager = _last(graph)
    with torch.no_grad():
        out = eager(*graph.leaves)
    if out.numel() == 0:
        vacuous("the program's output is empty: every gradient is zero whatever torch computes")
        return
    if not torch.isfinite(out).all() or out.abs().max() > 1e6:
        vacuous("the program's output overflows (or is huge): finite differences say nothing")
        return
    seed = data.draw(seeds(), label="seed of v")
    v = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(device)
    y = mode.run(eager, *graph.leaves)
    reverse = torch.autograd.grad(y, graph.leaves, grad_outputs=v, allow_unused=True)
    reference = _finite_difference_gradients(eager, graph.leaves, v)
    for index, (got, want) in enumerate(zip(reverse, reference)):
        got = torch.zeros_like(want) if got is None else got
        assert_close(got, want, clause="GRADVAL-3", **TOLERANCES,
                     what=f"d/dt{index} of <v, t{graph.n_values - 1}> by reverse mode ({mode}) against central differences of the eager program\n{graph!r}\n")


# ---------------------------------------------------------------------------------------------- GRADVAL-4


@pytest.mark.spec("GRADVAL-4")
@given(data=st.data())
def test_program_second_order_agrees_with_finite_differences(device, mode, data):
    """gradgradcheck of a drawn program (compiled in a compiled mode): the gradient of ``<g, J^T u>`` through the
    graph ``create_graph=True`` built, against finite differences of the first-order gradient."""
    graph = data.draw(_small_graphs(device, mode, max_steps=4), label="graph")
    fast = data.draw(st.booleans(), label="gradgradcheck fast_mode")
    with torch.no_grad():
        out = _last(graph)(*graph.leaves)
    if out.numel() == 0:
        vacuous("the program's output is empty: every gradient is zero whatever torch computes")
        return
    if not torch.isfinite(out).all() or out.abs().max() > 1e4:
        vacuous("the program's output overflows (or is huge): finite differences say nothing")
        return
    program = mode.compile(_last(graph))
    what = f"the second-order derivative (gradient of the gradient) of t{graph.n_values - 1} ({mode})\n{graph!r}\n"
    with keeping_graphs_allowed(mode), agreeing(clause="GRADVAL-4", what=what, reference=f"finite differences of the first-order gradient (gradgradcheck, {'fast' if fast else 'slow'} mode)"):
        torch.autograd.gradgradcheck(program, tuple(graph.leaves), fast_mode=fast, check_undefined_grad=False, raise_exception=True)


# ---------------------------------------------------------------------------------------------- GRADVAL-5

#: the registry's convex piecewise ops and their non-differentiable points
KINK_OPS = ("abs", "relu", "maximum", "amax", "vector_norm")


def _as_float(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.to(like.dtype)


def _minimum_norm_gradient(name: str, operands: tuple[torch.Tensor, ...], g: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The documented choice (the sub-gradient of minimum norm), computed with comparisons only."""
    x = operands[0].detach()
    if name == "abs":
        return (g * (_as_float(x > 0, x) - _as_float(x < 0, x)),)
    if name == "relu":
        return (g * _as_float(x > 0, x),)
    if name == "maximum":
        a, b = torch.broadcast_tensors(x, operands[1].detach())
        tie = _as_float(a == b, a) / 2
        return ((g * (_as_float(a > b, a) + tie)).sum_to_size(x.shape), (g * (_as_float(b > a, a) + tie)).sum_to_size(operands[1].shape))
    if name == "amax":
        top = x == x.max(dim=-1, keepdim=True).values
        return (g * _as_float(top, x) / _as_float(top, x).sum(dim=-1, keepdim=True),)
    if name == "vector_norm":  # drawn at the zero vector only
        return (torch.zeros_like(x),)
    raise AssertionError(name)


@st.composite
def kink_cases(draw, device, dtype):
    """An op of :data:`KINK_OPS` at operands that put some elements exactly on its non-differentiable points."""
    name = draw(st.sampled_from(KINK_OPS), label="op")
    op = ops_by_name()[name]
    form = draw(st.sampled_from(op.forms), label="form")
    min_last = 2 if name == "amax" else 1  # a tie for a row's maximum needs two elements in the row
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=1), label="leading shape")) + (draw(st.integers(min_last, 3), label="last side"),)
    n = int(torch.Size(shape).numel())
    seed = draw(seeds(), label="value seed")
    mask = torch.tensor(draw(st.lists(st.booleans(), min_size=n, max_size=n), label="elements at the kink")).reshape(shape)
    forced = [0, 1] if name == "amax" else [draw(st.integers(0, n - 1), label="an element surely at the kink")]
    mask.view(-1)[forced] = True  # amax: the first row's first two elements tie
    (a, b) = safe_values([shape, shape], seed)
    if name in ("abs", "relu"):
        operands = (torch.where(mask, torch.zeros_like(a), a),)
    elif name == "maximum":
        operands = (a, torch.where(mask, a, b))  # ties where the mask is set
    elif name == "amax":
        rows = torch.where(mask, a.abs().max() + 1, a)  # the masked elements of a row tie for its maximum
        operands = (torch.where(mask.any(dim=-1, keepdim=True), rows, a),)
    else:
        operands = (torch.zeros(shape, dtype=torch.float64),)
    operands = tuple(t.to(dtype=dtype, device=device).requires_grad_(True) for t in operands)
    return OpCase(form, operands)


@pytest.mark.spec("GRADVAL-5")
@given(data=st.data())
def test_non_differentiable_points_get_the_minimum_norm_subgradient(device, mode, data):
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    case = data.draw(kink_cases(device, dtype), label="case")
    y = mode.run(case.form.fn, *case.operands)
    seed = data.draw(seeds(), label="seed of the output gradient")
    (g,) = safe_values([tuple(y.shape)], seed, dtype)
    g = g.to(device)
    got = torch.autograd.grad(y, case.operands, grad_outputs=g)
    want = _minimum_norm_gradient(case.form.op.name, case.operands, g)
    for index, (actual, expected) in enumerate(zip(got, want)):
        assert_close(actual, expected, clause="GRADVAL-5",
                     what=f"d/dt{index} of {case.describe()} at a non-differentiable point ({mode}), against the sub-gradient of minimum norm\n{case!r}\n")
