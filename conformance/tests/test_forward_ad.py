"""Forward-mode AD: dual levels, make_dual / unpack_dual, tangents, views and in-place operations.
Spec: specs/forward_ad.md.

In a compiled mode the user program that computes on dual tensors is compiled; the level is entered, and the
duals made and unpacked, around it (as a user calls a compiled model inside ``dual_level``).
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, assert_raises, assert_succeeds, fail
from conformance.testlib.graphs import aliases_an_operand, graphs
from conformance.testlib.ops import KINDS, OPS
from conformance.testlib.strategies import REAL_DTYPES, broadcastable_shapes, shapes, tensors

SMALL = dict(max_dims=2, max_side=3)


def _with(body: Callable):
    with fwAD.dual_level():
        return body()


def _decorated(body: Callable):
    @fwAD.dual_level()
    def run():
        return body()

    return run()


def _enter_exit(body: Callable):
    fwAD.enter_dual_level()
    try:
        return body()
    finally:
        fwAD.exit_dual_level()


#: the documented ways to run code inside a dual level: LEVELS[name](body) runs body() in a level and returns its result
LEVELS = {
    "with fwAD.dual_level():": _with,
    "@fwAD.dual_level()": _decorated,
    "fwAD.enter_dual_level() ... fwAD.exit_dual_level()": _enter_exit,
}


def _jacobian_vector_product(program, leaves, tangents) -> torch.Tensor:
    """Σᵢ Jᵢ tᵢ of ``program``'s last value, from the Jacobians reverse mode computes (op by op)."""
    out_shape = program(*leaves)[-1].shape
    if not out_shape.numel():
        return torch.zeros(out_shape, dtype=leaves[0].dtype, device=leaves[0].device)  # an empty output
    jacobians = torch.autograd.functional.jacobian(lambda *values: program(*values)[-1], tuple(leaves))
    total = torch.zeros(out_shape, dtype=leaves[0].dtype, device=leaves[0].device).reshape(-1)
    for jacobian, tangent in zip(jacobians, tangents):
        total = total + jacobian.reshape(total.numel(), tangent.numel()) @ tangent.reshape(-1)
    return total.reshape(out_shape)


# --------------------------------------------------------------------------------------------- FWAD-1


@pytest.mark.spec("FWAD-1")
@given(data=st.data())
def test_tangents_are_jacobian_vector_products(device, mode, data):
    level = data.draw(st.sampled_from(sorted(LEVELS)), label="level")
    graph = data.draw(graphs(device=device, requires_grad=False, mode=mode, base_shape=shapes(min_side=1, **SMALL), max_steps=4), label="graph")
    tangents = [data.draw(tensors(dtype=leaf.dtype, shape=tuple(leaf.shape), device=device), label=f"tangent of t{i}") for i, leaf in enumerate(graph.leaves)]
    program = mode.compile(graph.program)

    def body():
        duals = [fwAD.make_dual(leaf, tangent) for leaf, tangent in zip(graph.leaves, tangents)]
        primal, tangent = fwAD.unpack_dual(program(*duals)[-1])
        return primal.clone(), None if tangent is None else tangent.clone()

    primal, tangent = LEVELS[level](body)
    expected = _jacobian_vector_product(graph.program, graph.leaves, tangents)
    what = f"the tangent of the last value, inside `{level}` ({mode})\n{graph!r}\n"
    if tangent is None:
        fail("FWAD-1", f"{what}: expected Σ Jᵢ tᵢ, got None (the output was computed from dual tensors)")
    tolerance = dict(rtol=1e-4, atol=1e-4) if graph.leaves[0].dtype == torch.float32 else {}
    assert_close(tangent, expected, clause="FWAD-1", what=f"{what}: Σ Jᵢ tᵢ with the Jacobians of reverse mode", **tolerance)
    assert_close(primal, graph.program(*graph.leaves)[-1], clause="FWAD-1", what=f"the primal of the last value, inside `{level}` ({mode}): the program's value", **tolerance)


@pytest.mark.spec("FWAD-1")
@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_tangent_of_each_operation(device, mode, kind, data):
    """One registry op of ``kind`` in one of its forms, every operand dual: the tangent against reverse mode."""
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    shape = data.draw(shapes(min_dims=1, min_side=1, **SMALL), label="shape")
    probe = torch.zeros(shape, dtype=dtype)
    op = data.draw(st.sampled_from([op for op in OPS if op.kind == kind and op.applicable(probe) and (op.compiles_whole or not mode.compiled)]), label="op")
    form = data.draw(st.sampled_from(op.forms), label="form")
    operands = [data.draw(tensors(dtype=dtype, shape=tuple(shape), device=device), label="a")]
    if op.arity == 2:
        b_shape = data.draw(broadcastable_shapes(tuple(shape)), label="b shape") if op.partner.__name__ == "_broadcastable" else tuple(shape)
        operands.append(data.draw(tensors(dtype=dtype, shape=b_shape, device=device), label="b"))
    tangents = [data.draw(tensors(dtype=dtype, shape=tuple(x.shape), device=device), label=f"tangent of {name}") for x, name in zip(operands, "ab")]
    program = mode.compile(form.fn)
    with fwAD.dual_level():
        tangent = fwAD.unpack_dual(program(*[fwAD.make_dual(x, t) for x, t in zip(operands, tangents)])).tangent
        tangent = None if tangent is None else tangent.clone()
    what = f"the tangent of `{form.source(*'ab'[: op.arity])}` on duals ({dtype}, {tuple(shape)}; {mode})"
    if tangent is None:
        fail("FWAD-1", f"{what}: expected Σ Jᵢ tᵢ, got None")
    expected = _jacobian_vector_product(lambda *values: (form.fn(*values),), operands, tangents)
    tolerance = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else {}
    assert_close(tangent, expected, clause="FWAD-1", what=f"{what}: Σ Jᵢ tᵢ with the Jacobians of reverse mode", **tolerance)


# --------------------------------------------------------------------------------------------- FWAD-2


@pytest.mark.spec("FWAD-2")
@given(data=st.data())
def test_no_dual_tensors_outside_a_level(device, mode, data):
    level = data.draw(st.sampled_from(sorted(LEVELS)), label="level")
    graph = data.draw(graphs(device=device, requires_grad=False, mode=mode, base_shape=shapes(**SMALL), max_steps=3), label="graph")
    x = graph.leaves[0]
    tangent = data.draw(tensors(dtype=x.dtype, shape=tuple(x.shape), device=device), label="tangent")
    with assert_raises(RuntimeError, clause="FWAD-2", what="fwAD.make_dual(x, tangent) outside any dual level"):
        fwAD.make_dual(x, tangent)
    unpacked = fwAD.unpack_dual(x)
    assert_equal(unpacked.tangent, None, clause="FWAD-2", what="the tangent unpack_dual gives for a plain tensor outside any dual level")
    assert_equal(unpacked.primal is x, True, clause="FWAD-2", what="whether unpack_dual(x).primal is x, outside any dual level")
    program = mode.compile(graph.program)

    def body():
        duals = [fwAD.make_dual(leaf, torch.ones_like(leaf)) for leaf in graph.leaves]
        values = duals + list(program(*duals))
        inside = [fwAD.unpack_dual(value).tangent is not None for value in values]
        return values, inside

    values, inside = LEVELS[level](body)
    if not any(inside):
        fail("FWAD-2", f"inside `{level}`, no dual or value computed from duals had a tangent ({mode})")
    for index, value in enumerate(values):
        assert_equal(fwAD.unpack_dual(value).tangent, None, clause="FWAD-2", what=f"the tangent of t{index} (made or computed inside `{level}`) after the level exited ({mode})\n{graph!r}\n")
    with assert_raises(RuntimeError, clause="FWAD-2", what=f"fwAD.make_dual(x, tangent) after `{level}` exited"):
        fwAD.make_dual(x, tangent)


# --------------------------------------------------------------------------------------------- FWAD-3


def _nested_with():
    with fwAD.dual_level():
        pass


def _nested_decorated():
    @fwAD.dual_level()
    def inner():
        return None

    inner()


#: the ways to enter a dual level while one is active (each must raise)
NESTED = {
    "with fwAD.dual_level():": _nested_with,
    "a function decorated with @fwAD.dual_level()": _nested_decorated,
    "fwAD.enter_dual_level()": lambda: fwAD.enter_dual_level(),
}


@pytest.mark.spec("FWAD-3")
@given(data=st.data())
def test_dual_levels_do_not_nest(device, mode, data):
    outer = data.draw(st.sampled_from(sorted(LEVELS)), label="outer level")
    nested = data.draw(st.sampled_from(sorted(NESTED)), label="nested entry")
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    x = data.draw(tensors(dtype=dtype, shape=shapes(min_side=1, **SMALL), device=device), label="x")
    t = data.draw(tensors(dtype=dtype, shape=tuple(x.shape), device=device), label="tangent")
    op = data.draw(st.sampled_from([op for op in OPS if op.kind == "elementwise"]), label="op")
    form = data.draw(st.sampled_from(op.forms), label="form")
    program = mode.compile(form.fn)

    def body():
        dual = fwAD.make_dual(x, t)
        with assert_raises(RuntimeError, match="[Nn]ested", clause="FWAD-3", what=f"entering a dual level by `{nested}` inside `{outer}`"):
            NESTED[nested]()
        tangent = fwAD.unpack_dual(dual).tangent
        result = fwAD.unpack_dual(program(dual)).tangent
        return dual, tangent, result

    with assert_succeeds(clause="FWAD-3", what=f"the rest of `{outer}` and its exit after a nested `{nested}` was refused"):
        dual, tangent, result = LEVELS[outer](body)
    assert_close(tangent, t, clause="FWAD-3", what=f"the tangent of a dual made inside `{outer}`, after a nested `{nested}` was refused")
    (expected,) = torch.autograd.functional.jvp(form.fn, (x,), (t,))[1:]
    assert_close(result, expected, clause="FWAD-3", what=f"the tangent of `{form.source('dual')}` after a nested `{nested}` was refused ({mode})", rtol=1e-4, atol=1e-4)
    assert_equal(fwAD.unpack_dual(dual).tangent, None, clause="FWAD-3", what=f"the tangent of the dual after `{outer}` exited (a nested entry was refused inside)")


# --------------------------------------------------------------------------------------------- FWAD-4


#: in-place operations on ``v`` (a dual or a view of one), with ``w`` a dual of ``v``'s shape:
#: name -> (operation, its Jacobian-vector product jvp(p, t, q, s) from v's primal/tangent p, t and w's q, s)
IN_PLACE = {
    "v.mul_(2.5)": (lambda v, w: v.mul_(2.5), lambda p, t, q, s: t * 2.5),
    "v.add_(1.0)": (lambda v, w: v.add_(1.0), lambda p, t, q, s: t),
    "v.sin_()": (lambda v, w: v.sin_(), lambda p, t, q, s: t * p.cos()),
    "v.pow_(2)": (lambda v, w: v.pow_(2), lambda p, t, q, s: 2 * p * t),
    "v.copy_(w)": (lambda v, w: v.copy_(w), lambda p, t, q, s: s),
    "v.mul_(w)": (lambda v, w: v.mul_(w), lambda p, t, q, s: t * q + p * s),
    "v += w": (lambda v, w: v.__iadd__(w), lambda p, t, q, s: t + s),
}


def _view_forms(x: torch.Tensor) -> list:
    """Registry forms that return a view of ``x`` whose elements do not overlap (expand's do: no in-place there)."""
    forms = [("v = d", lambda a: a)]
    for op in OPS:
        if op.arity != 1 or op.name == "expand" or not op.applicable(x):
            continue
        forms += [(f"v = {form.source('d')}", form.fn) for form in op.forms if form.fn(x).numel() and aliases_an_operand(form.fn(x), (x,))]
    return forms


@pytest.mark.spec("FWAD-4")
@given(data=st.data())
def test_views_and_in_place_operations_carry_tangents(device, mode, data):
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    x = data.draw(tensors(dtype=dtype, shape=shapes(min_dims=1, min_side=1, **SMALL), device=device), label="x")
    t = data.draw(tensors(dtype=dtype, shape=tuple(x.shape), device=device), label="tangent of x")
    source, view = data.draw(st.sampled_from(_view_forms(x)), label="view")
    name = data.draw(st.sampled_from(sorted(IN_PLACE)), label="in-place operation")
    operation, jvp = IN_PLACE[name]
    shape = tuple(view(x).shape)
    q = data.draw(tensors(dtype=dtype, shape=shape, device=device), label="w's primal")
    s = data.draw(tensors(dtype=dtype, shape=shape, device=device), label="w's tangent")

    def program(d, w):  # the user program: take the view, change it in place
        v = view(d)
        operation(v, w)
        return v

    compiled = mode.compile(program)
    with fwAD.dual_level():
        d = fwAD.make_dual(x.clone(), t.clone())
        view_tangent = fwAD.unpack_dual(view(d)).tangent
        view_tangent = None if view_tangent is None else view_tangent.clone()
        v = compiled(d, fwAD.make_dual(q, s))
        d_primal, d_tangent = (None if u is None else u.clone() for u in fwAD.unpack_dual(d))
        v_tangent = fwAD.unpack_dual(v).tangent
        v_tangent = None if v_tangent is None else v_tangent.clone()

    if view_tangent is None:
        fail("FWAD-4", f"`{source}` of a dual d: its tangent should be the same view of d's tangent, got None")
    assert_close(view_tangent, view(t), clause="FWAD-4", what=f"the tangent of `{source}` of a dual d: the same view of d's tangent")
    expected_primal, expected_tangent = x.clone(), t.clone()
    p = view(x)
    view(expected_tangent).copy_(jvp(p, view(t), q, s))
    operation(view(expected_primal), q)
    what = f"`{source}; {name.replace('w', 'w')}` inside a dual level ({mode})"
    if d_tangent is None:
        fail("FWAD-4", f"{what}: d's tangent should be updated, got None")
    tolerance = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else {}
    assert_close(d_primal, expected_primal, clause="FWAD-4", what=f"d's primal after {what}", **tolerance)
    assert_close(d_tangent, expected_tangent, clause="FWAD-4", what=f"d's tangent after {what}: the jvp on the changed elements, unchanged elsewhere", **tolerance)
    if v_tangent is None:
        fail("FWAD-4", f"{what}: the tangent of v should be updated, got None")
    assert_close(v_tangent, view(expected_tangent), clause="FWAD-4", what=f"v's tangent after {what}", **tolerance)
