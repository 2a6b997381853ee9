"""Leaves, grad_fn and .grad.  Spec: specs/leaves.md."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from conformance.testlib.assertions import (
    assert_close,
    assert_does_not_warn,
    assert_equal,
    assert_raises,
    assert_requires_grad,
    assert_succeeds,
    assert_warns,
    fail,
)
from conformance.testlib.factories import FACTORIES, create
from conformance.testlib.graphs import Graph, graphs, recorded_leaves
from conformance.testlib.strategies import DIFFERENTIABLE_DTYPES, NON_DIFFERENTIABLE_DTYPES, REAL_DTYPES, dtypes, shapes, tensors

NODE_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*Backward[0-9]+$")


def _leaf_names(graph: Graph, tensors: list[torch.Tensor]) -> list[str]:
    """``t<i>`` for each leaf of ``graph`` among ``tensors`` (by identity)."""
    return sorted(f"t{i}" for i, leaf in enumerate(graph.leaves) if any(leaf is t for t in tensors))


# ----------------------------------------------------------------------------- LEAF-1

def _set_requires_grad(tensor: torch.Tensor) -> torch.Tensor:
    tensor.requires_grad = True
    return tensor


#: how a user makes a tensor: name -> make(shape, dtype, device, mode).  In a compiled mode the creation runs in a
#: compiled function: dynamo compiles ``nn.Parameter(x)`` of an argument ``x`` (made before, outside), not of a
#: tensor made inside; ``requires_grad_()`` and the setter act on the compiled function's output (inside it dynamo
#: breaks the graph on both); a factory with ``requires_grad=True`` breaks the graph (reported "not compiled").
USER_CREATED = {
    **{f"torch.{name}(...)": (lambda name: lambda s, d, dev, mode: create(name, s, d, dev, mode=mode))(name) for name in FACTORIES},
    **{
        f"torch.{name}(..., requires_grad=True)": (lambda name: lambda s, d, dev, mode: create(name, s, d, dev, mode=mode, requires_grad=True))(name)
        for name in FACTORIES
    },
    "torch.from_numpy(array).to(device)": lambda s, d, dev, mode: mode.run(lambda: torch.from_numpy(np.ones(s)).to(dtype=d, device=dev)),
    "x.clone() of x not requiring grad": lambda s, d, dev, mode: mode.run(lambda: torch.ones(s, dtype=d, device=dev).clone()),
    "nn.Parameter(x)": lambda s, d, dev, mode: mode.run(lambda x: torch.nn.Parameter(x), torch.ones(s, dtype=d, device=dev)),
    "nn.Parameter(x, requires_grad=False)": lambda s, d, dev, mode: mode.run(
        lambda x: torch.nn.Parameter(x, requires_grad=False), torch.ones(s, dtype=d, device=dev)
    ),
    "x.requires_grad_()": lambda s, d, dev, mode: mode.run(lambda: torch.ones(s, dtype=d, device=dev)).requires_grad_(),
    "x.requires_grad = True": lambda s, d, dev, mode: _set_requires_grad(mode.run(lambda: torch.ones(s, dtype=d, device=dev))),
}


@pytest.mark.spec("LEAF-1")
@pytest.mark.parametrize("creation", sorted(USER_CREATED))
@given(data=st.data())
def test_tensors_the_user_creates_are_leaves(device, mode, creation, data):
    """One test per way of creating (a way dynamo cannot compile is reported "not compiled" on its own)."""
    shape = data.draw(shapes(), label="shape")
    dtype = data.draw(dtypes(REAL_DTYPES), label="dtype")
    tensor = USER_CREATED[creation](shape, dtype, device, mode)
    assert_equal((tensor.is_leaf, tensor.grad_fn), (True, None), clause="LEAF-1", what=f"(is_leaf, grad_fn) of `{creation}` with shape {shape}, {dtype} ({mode})")


# ----------------------------------------------------------------------------- LEAF-2


@pytest.mark.spec("LEAF-2")
@given(data=st.data())
def test_results_have_a_grad_fn_named_op_backward_n(device, data):
    graph = data.draw(graphs(device=device, requires_grad=True), label="graph")
    for step in graph.trace():
        if any(step.output is t for t in step.inputs):
            continue  # the op returned one of its inputs as is: nothing new was recorded
        if step.output.is_leaf:
            fail("LEAF-2", f"`{step.source}` of inputs that require grad should not be a leaf\n{graph!r}")
        node = step.output.grad_fn
        class_name, name = type(node).__name__, node.name()
        if not NODE_NAME.match(class_name) or class_name != name:
            fail("LEAF-2", f"grad_fn of `{step.source}` should be named <Op>Backward<N> (class name == name()), got class {class_name!r}, name() {name!r}")


# ----------------------------------------------------------------------------- LEAF-3


@pytest.mark.spec("LEAF-3")
@given(data=st.data())
def test_next_functions_lead_back_to_exactly_the_leaves_requiring_grad(device, mode, data):
    """Every program has a leaf that requires grad and that its last value was not computed from, but another value
    was (``graphs(unrelated_leaf=True)``), so "reaches no other leaf" is checked in every example; in a compiled mode
    the program is compiled whole."""
    graph = data.draw(graphs(device=device, requires_grad=st.booleans(), mode=mode, unrelated_leaf=True), label="graph")
    for index, value in enumerate(graph.run(mode=mode)):
        if value.is_leaf:
            continue
        reached = recorded_leaves(value)
        expected = [graph.leaves[i] for i in sorted(graph.leaves_behind(index)) if graph.leaves[i].requires_grad]
        strangers = [t for t in reached if not any(t is leaf for leaf in graph.leaves)]
        if _leaf_names(graph, reached) != _leaf_names(graph, expected) or strangers:
            fail(
                "LEAF-3",
                f"from t{index}.grad_fn ({mode}), next_functions should reach the leaves {_leaf_names(graph, expected)} (those requiring grad "
                f"it was computed from), but reach {_leaf_names(graph, reached)}"
                + (f" and {len(strangers)} tensor(s) that are not leaves of the program" if strangers else "")
                + f"\n{graph!r}",
            )


def _two_outputs_each_from_one_leaf(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The simplest program with a leaf that one of its outputs was not computed from: ``a * 2`` and ``b * 3``."""
    return a * 2, b * 3


def _two_leaves_requiring_grad(device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.ones(3, device=device, requires_grad=True), torch.ones(3, device=device, requires_grad=True)


@pytest.mark.spec("LEAF-3")
def test_next_functions_of_one_of_two_outputs_reach_only_its_leaf(device, mode):
    """A pinned reproduction of pytorch/pytorch#131794 (listed in conformance/spec/expectations.toml): in a compiled
    mode the two-output program is compiled whole, and under AOTAutograd both outputs share one backward node."""
    a, b = _two_leaves_requiring_grad(device)
    out_a, out_b = mode.run(_two_outputs_each_from_one_leaf, a, b)
    names = {id(a): "a", id(b): "b"}
    for source, output, own in (("a * 2", out_a, a), ("b * 3", out_b, b)):
        reached = recorded_leaves(output)
        if len(reached) != 1 or reached[0] is not own:
            fail(
                "LEAF-3",
                f"from the grad_fn of `{source}` (one of the outputs of `return a * 2, b * 3`; a and b require grad; {mode}), "
                f"next_functions should reach the leaf [{names[id(own)]}], but reach {[names.get(id(t), 'a tensor that is not a leaf of the program') for t in reached]}",
            )


BINARY_SOURCES = {
    "w * x": lambda w, x: w * x,
    "torch.mul(x, w)": lambda w, x: torch.mul(x, w),
    "w + x": lambda w, x: w + x,
    "torch.sub(x, w)": lambda w, x: torch.sub(x, w),
    "w / x": lambda w, x: w / x,
    "torch.atan2(w, x)": lambda w, x: torch.atan2(w, x),
    "torch.maximum(x, w)": lambda w, x: torch.maximum(x, w),
}


@pytest.mark.spec("LEAF-3")
@pytest.mark.parametrize("source", sorted(BINARY_SOURCES))
@given(data=st.data())
def test_inputs_not_requiring_grad_are_none_in_next_functions(device, mode, source, data):
    shape = data.draw(shapes(min_dims=1), label="shape")
    w = data.draw(tensors(dtype=torch.float64, shape=shape, device=device, requires_grad=True), label="w")
    x = data.draw(tensors(dtype=torch.float64, shape=shape, device=device), label="x")
    entries = [node for node, _ in mode.run(BINARY_SOURCES[source], w, x).grad_fn.next_functions]
    accumulators = [node for node in entries if node is not None]
    if None not in entries or len(accumulators) != 1 or accumulators[0].variable is not w:
        fail("LEAF-3", f"next_functions of `{source}` ({mode}; w requires grad, x does not) should hold w's accumulation node and a None for x, got {entries}")


# ----------------------------------------------------------------------------- LEAF-4


def _assert_grad_matches_the_leaf(leaf: torch.Tensor, what: str) -> None:
    """LEAF-4: ``leaf.grad`` has the leaf's shape, dtype and device, and does not itself require grad."""
    __tracebackhide__ = True
    grad = leaf.grad
    assert_equal(
        (tuple(grad.shape), grad.dtype, grad.device, grad.requires_grad),
        (tuple(leaf.shape), leaf.dtype, leaf.device, False),
        clause="LEAF-4",
        what=f"(shape, dtype, device, requires_grad) of {what}",
    )


@pytest.mark.spec("LEAF-4")
@given(data=st.data())
def test_after_backward_each_leaf_grad_matches_the_leaf(device, mode, data):
    """In a compiled mode the program is compiled whole (every step's output returned) and backward runs from its last output.
    Every program has a leaf that requires grad and that the output was not computed from, but another value was
    (``graphs(unrelated_leaf=True)``), so "keeps .grad None" is checked in every example."""
    graph = data.draw(graphs(device=device, requires_grad=st.booleans(), mode=mode, unrelated_leaf=True), label="graph")
    behind = graph.leaves_behind(graph.n_values - 1)
    # at least one leaf the output was computed from requires grad, so there is a backward pass to check
    forced = data.draw(st.sampled_from(sorted(behind)), label="leaf behind the output made to require grad")
    graph.leaves[forced].requires_grad_(True)
    graph.output(mode=mode).sum().backward()
    for index, leaf in enumerate(graph.leaves):
        if not (leaf.requires_grad and index in behind):
            assert_equal(leaf.grad, None, clause="LEAF-4", what=f".grad of t{index} (requires_grad={leaf.requires_grad}, reaches the output: {index in behind}; {mode})\n{graph!r}\n")
            continue
        if leaf.grad is None:
            fail("LEAF-4", f"t{index} requires grad and the output was computed from it, its .grad should be set after backward ({mode}), but it is None\n{graph!r}")
        _assert_grad_matches_the_leaf(leaf, f"t{index}.grad ({mode})")


@pytest.mark.spec("LEAF-4")
@given(data=st.data())
def test_grad_has_the_leaf_dtype_for_every_differentiable_dtype(device, mode, data):
    x = data.draw(tensors(dtype=dtypes(DIFFERENTIABLE_DTYPES), shape=shapes(max_side=3), device=device, requires_grad=True), label="x")
    mode.run(lambda x: (x * 2).abs().sum(), x).backward()
    _assert_grad_matches_the_leaf(x, f"x.grad after (x * 2).abs().sum().backward() ({mode})")


@pytest.mark.spec("LEAF-4")
def test_backward_from_one_of_two_outputs_leaves_the_other_leaf_grad_none(device, mode):
    """A pinned reproduction of pytorch/pytorch#131794 (listed in conformance/spec/expectations.toml): in a compiled
    mode the two-output program is compiled whole and backward runs from its first output only."""
    a, b = _two_leaves_requiring_grad(device)
    out_a, _ = mode.run(_two_outputs_each_from_one_leaf, a, b)
    out_a.sum().backward()
    what = f"after (a * 2).sum().backward() of the outputs of `return a * 2, b * 3` (a and b require grad; {mode})"
    if a.grad is None:
        fail("LEAF-4", f"a.grad should be set {what}, but it is None")
    _assert_grad_matches_the_leaf(a, f"a.grad {what}")
    assert_equal(b.grad, None, clause="LEAF-4", what=f".grad of b (the output was not computed from it) {what}")


# ----------------------------------------------------------------------------- LEAF-5


@pytest.mark.spec("LEAF-5")
@given(data=st.data())
def test_non_leaves_get_no_grad_and_reading_it_warns(device, mode, data):
    graph = data.draw(graphs(device=device, requires_grad=True, mode=mode), label="graph")
    values = graph.run(mode=mode)
    values[-1].sum().backward()
    for index, value in enumerate(values):
        if value.is_leaf:
            with assert_does_not_warn(UserWarning, clause="LEAF-5", what=f"reading .grad of the leaf t{index} ({mode})"):
                value.grad
            continue
        with assert_warns(UserWarning, match="retain_grad", clause="LEAF-5", what=f"reading .grad of the non-leaf t{index} = {graph.source(index - len(graph.leaves))} ({mode})"):
            grad = value.grad
        assert_equal(grad, None, clause="LEAF-5", what=f".grad of the non-leaf t{index} after backward ({mode})")


# ----------------------------------------------------------------------------- LEAF-6, -7


def _run_cut_after(graph: Graph, index: int, mode) -> list[torch.Tensor]:
    """All values of ``graph`` (leaves, then every step's output), its program run as two: the steps up to ``t<index>``,
    then the rest on every value so far.  In a compiled mode these are two compiled functions, so ``t<index>`` is an
    intermediate result that the second one's outputs are computed from (within one compiled function's outputs,
    autograd sees none computed from another: they all come from the compiled region's one node)."""
    cut = index - len(graph.leaves) + 1
    values = list(graph.leaves) + list(mode.run(Graph(list(graph.leaves), graph.steps[:cut]).program, *graph.leaves))
    if cut < len(graph.steps):
        values += list(mode.run(Graph(list(values), graph.steps[cut:]).program, *values))
    return values


@pytest.mark.spec("LEAF-6")
@given(data=st.data())
def test_retain_grad_keeps_a_non_leaf_gradient(device, mode, data):
    """``retain_grad()`` is called around compiled code (inside it, dynamo does not compile the function), on the
    output of a first compiled function that a second one computes from."""
    graph = data.draw(graphs(device=device, requires_grad=True, dtype=torch.float64, mode=mode), label="graph")
    non_leaves = [i for i, v in enumerate(graph.run(mode=mode)) if not v.is_leaf]
    assume(non_leaves)
    chosen = data.draw(st.sampled_from(non_leaves), label="the non-leaf that retains its grad")
    values = _run_cut_after(graph, chosen, mode)
    retained = values[chosen]
    loss = values[-1].sum()
    (expected,) = torch.autograd.grad(loss, retained, retain_graph=True, allow_unused=True)
    retained.retain_grad()
    graph.leaves[0].retain_grad()  # a no-op on a leaf
    for index, value in enumerate(values):
        should = not value.is_leaf and value is retained
        assert_equal(value.retains_grad, should, clause="LEAF-6", what=f"t{index}.retains_grad (t{chosen} called retain_grad(); t{index} is {'a leaf' if value.is_leaf else 'not a leaf'}; {mode})")
    loss.backward()
    with assert_does_not_warn(UserWarning, clause="LEAF-6", what=f"reading .grad of t{chosen} after retain_grad() ({mode})"):
        got = retained.grad
    what = f"t{chosen}.grad after retain_grad() and backward (the gradient of the output with respect to it; {mode})\n{graph!r}\n"
    if expected is None:
        assert_equal(got, None, clause="LEAF-6", what=what + f"(t{chosen} does not reach the output)")
    else:
        assert_close(got, expected, clause="LEAF-6", what=what)


#: in-place changes of a retained non-leaf ``r`` after ``r.retain_grad()``: of ``r`` itself, or through a view of it
#: (torch 2.0-2.2 lost the retained gradient then: https://github.com/pytorch/pytorch/issues/117366)
IN_PLACE_AFTER_RETAIN = {
    "r.mul_(2)": lambda r: r.mul_(2),
    "r.add_(1)": lambda r: r.add_(1),
    "r.view(-1).mul_(2)": lambda r: r.view(-1).mul_(2),
    "r[...].add_(1)": lambda r: r[...].add_(1),
}


@pytest.mark.spec("LEAF-6")
@pytest.mark.parametrize("change", sorted(IN_PLACE_AFTER_RETAIN))
@given(data=st.data())
def test_retain_grad_survives_in_place_changes(device, mode, change, data):
    """In a compiled mode ``r`` is a first compiled function's output, changed in place by a second and used by a
    third; ``retain_grad()`` is called around them.

    In a compiled mode the drawn ``r`` is not empty: an empty result after a recompile with dynamic shapes is a
    known torch defect whose deterministic reproduction is
    :func:`test_retain_grad_survives_in_place_changes_of_an_empty_result_after_a_recompile` (drawn here, it
    would make this test's outcome depend on the draw)."""
    shape = shapes(min_side=1) if mode.compiled else shapes()
    x = data.draw(tensors(dtype=torch.float64, shape=shape, device=device, requires_grad=True), label="x")
    r = mode.run(lambda x: x * 1.5, x)
    r.retain_grad()
    mode.run(IN_PLACE_AFTER_RETAIN[change], r)
    assert_equal(r.retains_grad, True, clause="LEAF-6", what=f"r.retains_grad after r.retain_grad() and `{change}` ({mode})")
    expected = 2 * r.detach()  # d/dr of (r * r).sum(), for r as changed
    mode.run(lambda r: (r * r).sum(), r).backward()
    with assert_does_not_warn(UserWarning, clause="LEAF-6", what=f"reading r.grad after r.retain_grad(), `{change}` and backward ({mode})"):
        got = r.grad
    assert_close(got, expected, clause="LEAF-6", what=f"r.grad after r.retain_grad(), `{change}` and backward of (r * r).sum() (the gradient with respect to r as changed; {mode})")


@pytest.mark.spec("LEAF-6")
@pytest.mark.parametrize("change", ["r.view(-1).mul_(2)", "r[...].add_(1)"])
def test_retain_grad_survives_in_place_changes_of_an_empty_result_after_a_recompile(device, mode, change):
    """The same program twice: on a (2, 3) input, then on an empty (0, 4, 4) one (in a compiled mode the second
    call recompiles with dynamic shapes), ``r`` changed in place through a view before backward."""
    for shape in ((2, 3), (0, 4, 4)):
        x = torch.randn(shape, dtype=torch.float64, device=device, requires_grad=True)
        r = mode.run(lambda x: x * 1.5, x)
        r.retain_grad()
        mode.run(IN_PLACE_AFTER_RETAIN[change], r)
        expected = 2 * r.detach()
        what = f"backward of (r * r).sum() after r.retain_grad() and `{change}`, r of shape {tuple(shape)} ({mode})"
        with assert_succeeds(clause="LEAF-6", what=what):
            mode.run(lambda r: (r * r).sum(), r).backward()
        assert_close(r.grad, expected, clause="LEAF-6", what=f"r.grad after {what}")

@pytest.mark.spec("LEAF-7")
@given(data=st.data())
def test_retain_grad_on_a_tensor_not_requiring_grad_raises(device, mode, data):
    """The tensor is a compiled function's output in a compiled mode (called under no_grad for "computed under
    no_grad"); ``retain_grad()`` is called on it around the compiled code (inside, dynamo does not compile it)."""
    how = data.draw(st.sampled_from(["created", "computed under no_grad", "detached"]), label="how the tensor was made")
    dtype = data.draw(dtypes(NON_DIFFERENTIABLE_DTYPES + REAL_DTYPES), label="dtype")
    t = data.draw(tensors(dtype=dtype, device=device), label="t")
    if how == "computed under no_grad" and dtype.is_floating_point:
        source = t.clone().requires_grad_()
        with torch.no_grad():
            t = mode.run(lambda s: s * 2, source)
    elif how == "detached" and dtype.is_floating_point:
        t = mode.run(lambda s: (s * 2).detach(), t.clone().requires_grad_())
    else:  # created by the user: a copy of the drawn tensor
        t = mode.run(lambda s: s.clone(), t)
    assert_requires_grad(t, False, clause="LEAF-7", what=f"the {how} tensor ({mode})")
    with assert_raises(RuntimeError, match="requires_grad=False", clause="LEAF-7", what=f"retain_grad() on a {how} {dtype} tensor ({mode})"):
        t.retain_grad()


# ----------------------------------------------------------------------------- LEAF-8

#: f, its second derivative; each f'' depends on x, so x.grad = f'(x) must be differentiable
NONLINEAR = {
    "x ** 3": (lambda x: x**3, lambda x: 6 * x),
    "x * x": (lambda x: x * x, lambda x: torch.full_like(x, 2.0)),
    "torch.sin(x)": (torch.sin, lambda x: -torch.sin(x)),
    "x.exp()": (lambda x: x.exp(), torch.exp),
    "torch.tanh(x)": (torch.tanh, lambda x: -2 * torch.tanh(x) * (1 - torch.tanh(x) ** 2)),
    "x.sigmoid()": (lambda x: x.sigmoid(), lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x)) * (1 - 2 * torch.sigmoid(x))),
}


@pytest.mark.spec("LEAF-8")
@pytest.mark.parametrize("function", sorted(NONLINEAR))
@given(data=st.data())
def test_create_graph_makes_grad_differentiable(device, mode, function, data):
    """In a compiled mode ``f`` is compiled; both backward passes run through its output."""
    f, second = NONLINEAR[function]
    x = data.draw(tensors(dtype=torch.float64, shape=shapes(max_side=3), device=device, requires_grad=True, low=-2, high=2), label="x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # backward(create_graph=True) warns about a reference cycle
        mode.run(lambda x: f(x).sum(), x).backward(create_graph=True)
    grad = x.grad
    x.grad = None  # break the parameter <-> gradient reference cycle create_graph makes
    assert_requires_grad(grad, True, clause="LEAF-8", what=f"x.grad after {function}.sum().backward(create_graph=True) ({mode})")
    if grad.grad_fn is None:
        fail("LEAF-8", f"x.grad after {function}.sum().backward(create_graph=True) should have a grad_fn ({mode}), it has none")
    with assert_succeeds(clause="LEAF-8", what=f"differentiating x.grad of {function} with respect to x ({mode})"):
        (derivative,) = torch.autograd.grad(grad.sum(), x)
    assert_close(derivative, second(x), clause="LEAF-8", what=f"the derivative of x.grad of {function} (the second derivative; {mode})")
