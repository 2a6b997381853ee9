"""backward(): retain_graph, create_graph, gradient and inputs.  Spec: specs/backward.md."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, assert_raises, assert_succeeds, fail
from conformance.testlib.forms import ACCUMULATING_BACKWARD_PASSES, BACKWARD_PASSES
from conformance.testlib.graphs import graphs
from conformance.testlib.modes import EAGER, Mode, keeping_graphs_allowed
from conformance.testlib.saved_tensors import SAVES_NOTHING, record_saved_tensors
from conformance.testlib.strategies import shapes, tensors

RETAIN_MATCH = "retain_graph"


def _saving_loss(graph, mode):
    """The user program: the graph's output squared and summed (``pow`` saves its input, so the graph holds
    saved tensors), as a function of the leaves, compiled in a compiled ``mode``.  Call it on ``graph.leaves``."""

    def saving_loss(*leaves):
        return (graph.program(*leaves)[-1] ** 2).sum()

    return mode.compile(saving_loss)


@pytest.mark.spec("BWD-1")
@pytest.mark.parametrize("first", sorted(BACKWARD_PASSES))
@pytest.mark.parametrize("second", sorted(BACKWARD_PASSES))
@given(data=st.data())
def test_second_pass_through_a_freed_graph_raises(device, mode, first, second, data):
    graph = data.draw(graphs(device=device, requires_grad=True, mode=mode), label="graph")
    y = _saving_loss(graph, mode)(*graph.leaves)
    BACKWARD_PASSES[first](y, graph.leaves)
    with assert_raises(RuntimeError, match=RETAIN_MATCH, clause="BWD-1", what=f"`{second}` after `{first}` without retain_graph ({mode})\n{graph!r}\n"):
        BACKWARD_PASSES[second](y, graph.leaves)


@pytest.mark.spec("BWD-2")
@pytest.mark.parametrize("first", sorted(BACKWARD_PASSES))
@pytest.mark.parametrize("second", sorted(BACKWARD_PASSES))
@given(data=st.data())
def test_retain_graph_allows_a_second_pass(device, mode, first, second, data):
    with keeping_graphs_allowed(mode):
        graph = data.draw(graphs(device=device, requires_grad=True, dtype=torch.float64, mode=mode), label="graph")
        loss = _saving_loss(graph, mode)
        # the reference comes from a graph of its own, so nothing here depends on the graph under test being kept
        single = torch.autograd.grad(loss(*graph.leaves), graph.leaves, allow_unused=True)
        y = loss(*graph.leaves)
        BACKWARD_PASSES[first](y, graph.leaves, retain_graph=True)
        before = [None if leaf.grad is None else leaf.grad.clone() for leaf in graph.leaves]
        with assert_succeeds(clause="BWD-2", what=f"`{second}` after `{first}` with retain_graph=True ({mode})\n{graph!r}\n"):
            returned = BACKWARD_PASSES[second](y, graph.leaves)
        for index, (leaf, old, grad) in enumerate(zip(graph.leaves, before, single)):
            if grad is None:
                continue
            if returned is not None:  # torch.autograd.grad returns the gradients
                assert_close(returned[index], grad, clause="BWD-2", what=f"gradient of t{index} returned by the retained second pass `{second}`")
            else:
                expected = grad if old is None else old + grad
                assert_close(leaf.grad, expected, clause="BWD-2", what=f".grad of t{index} after the retained second pass `{second}` (accumulated)")


def _keeps_an_intermediate(x):
    """A program whose backward needs an intermediate value (the row sums of ``exp``), not only its input."""
    return (x.exp().sum(-1) ** 2).sum()


#: the arguments that keep the graph for another pass, and the clause that says so
KEEPING_ARGUMENTS = [
    pytest.param("retain_graph=True", {"retain_graph": True}, marks=pytest.mark.spec("BWD-2"), id="retain_graph=True"),
    pytest.param("create_graph=True", {"create_graph": True}, marks=pytest.mark.spec("BWD-3"), id="create_graph=True"),
]


@pytest.mark.parametrize("keep, keeping", KEEPING_ARGUMENTS)
@pytest.mark.parametrize("first", sorted(ACCUMULATING_BACKWARD_PASSES))
@given(data=st.data())
def test_keeping_the_graph_after_a_pass_without_it(device, mode, keep, keeping, first, data):
    """A function run and differentiated once without keeping its graph (a training step), then run again:
    the new graph is kept by retain_graph=True or create_graph=True like any other, and a second pass through
    it accumulates.  (In compiled modes torch's defaults apply: the program always has a backward that
    AOTAutograd may let overwrite a saved intermediate.)"""
    x = data.draw(tensors(dtype=torch.float64, shape=shapes(min_dims=1, min_side=1, max_dims=2), device=device, requires_grad=True), label="x")
    program = mode.compile(_keeps_an_intermediate)
    program(x).backward()
    single = x.grad.clone()
    x.grad = None
    y = program(x)
    what = f"`{first}` with {keep}, then `{first}` again, through a new call of a function whose earlier graph y.backward() freed ({mode})"
    clause = "BWD-2" if "retain" in keep else "BWD-3"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # backward(create_graph=True) warns about a reference cycle
        with assert_succeeds(clause=clause, what=what):
            ACCUMULATING_BACKWARD_PASSES[first](y, [x], **keeping)
            ACCUMULATING_BACKWARD_PASSES[first](y, [x])
    grad, x.grad = x.grad, None  # break the parameter <-> gradient reference cycle create_graph makes
    assert_close(grad, 2 * single, clause=clause, what=f"x.grad after {what}: two passes accumulated")


@pytest.mark.spec("BWD-3")
@pytest.mark.parametrize("first", sorted(BACKWARD_PASSES))
@given(data=st.data())
def test_create_graph_implies_retain_graph(device, mode, first, data):
    with keeping_graphs_allowed(mode):
        graph = data.draw(graphs(device=device, requires_grad=True, mode=mode), label="graph")
        y = _saving_loss(graph, mode)(*graph.leaves)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # backward(create_graph=True) warns about a reference cycle
            BACKWARD_PASSES[first](y, graph.leaves, create_graph=True)
        with assert_succeeds(clause="BWD-3", what=f"a second pass after `{first}` with create_graph=True ({mode})"):
            torch.autograd.grad(y, graph.leaves, allow_unused=True)
        for leaf in graph.leaves:
            leaf.grad = None  # break the parameter <-> gradient reference cycle create_graph makes


def _first_order_gradients(first: str, y: torch.Tensor, leaves: list) -> list:
    """Each leaf's gradient of ``y`` from ``first`` with create_graph=True: the returned ones, or the ``.grad`` it filled."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # backward(create_graph=True) warns about a reference cycle
        returned = BACKWARD_PASSES[first](y, leaves, create_graph=True)
    gradients = list(returned) if returned is not None else [leaf.grad for leaf in leaves]
    for leaf in leaves:
        leaf.grad = None  # break the parameter <-> gradient reference cycle create_graph makes
    return gradients


def _second_order(gradients: list, leaves: list) -> tuple:
    """The gradient of the sum of ``gradients`` (a Hessian-vector product with a vector of ones) w.r.t. ``leaves``."""
    total = sum(g.sum() for g in gradients if g is not None)
    return torch.autograd.grad(total, leaves, allow_unused=True)


@pytest.mark.spec("BWD-3")
@given(data=st.data())
def test_create_graph_keeps_the_graph_for_a_second_order_pass(device, mode, data):
    """The pass after create_graph=True goes through the graph of the derivative, which uses the values the
    forward graph saved: it gives the second-order gradient the same program gives when not compiled.

    The first pass's spelling is drawn, not parametrized: a failing compiled example shrinks through many
    compilations, and one test instead of three keeps that affordable."""
    first = data.draw(st.sampled_from(sorted(BACKWARD_PASSES)), label="first pass (create_graph=True)")
    with keeping_graphs_allowed(mode):
        graph = data.draw(graphs(device=device, requires_grad=True, dtype=torch.float64, mode=mode), label="graph")
        # the reference: the same program, run op by op
        expected = _second_order(_first_order_gradients(first, _saving_loss(graph, Mode(EAGER))(*graph.leaves), graph.leaves), graph.leaves)
        gradients = _first_order_gradients(first, _saving_loss(graph, mode)(*graph.leaves), graph.leaves)
        what = f"a second-order pass (torch.autograd.grad of the gradients' sum) after `{first}` with create_graph=True ({mode})\n{graph!r}\n"
        with assert_succeeds(clause="BWD-3", what=what):
            second = _second_order(gradients, graph.leaves)
        for index, (got, want) in enumerate(zip(second, expected)):
            if want is None:
                assert_equal(got, None, clause="BWD-3", what=f"second-order gradient of t{index}, which the gradients do not depend on ({mode})")
            else:
                assert_close(got, want, clause="BWD-3", what=f"second-order gradient of t{index} after `{first}` with create_graph=True ({mode}) vs eager")


@pytest.mark.spec("BWD-4")
@pytest.mark.parametrize("source", sorted(SAVES_NOTHING))
@given(data=st.data())
def test_graph_without_saved_tensors_can_be_traversed_again(device, mode, source, data):
    x = data.draw(tensors(dtype=torch.float64, shape=st.tuples(st.integers(1, 3), st.integers(1, 3)), device=device, requires_grad=True), label="x")
    with record_saved_tensors() as log:
        SAVES_NOTHING[source](x.detach().requires_grad_())
    if log.count:
        fail("BWD-4", f"`{source}` (sums, additions, views) should save nothing for backward, but it saved {log.describe()}")
    y = mode.run(SAVES_NOTHING[source], x)
    y.backward()
    single = x.grad.clone()
    with assert_succeeds(clause="BWD-4", what=f"a second backward through `{source}` without retain_graph ({mode})"):
        y.backward()
    assert_close(x.grad, 2 * single, clause="BWD-4", what=f"x.grad after two passes through `{source}` ({mode})")


@pytest.mark.spec("BWD-5")
@given(data=st.data())
def test_non_scalar_backward_needs_a_gradient(device, mode, data):
    graph = data.draw(graphs(device=device, requires_grad=True, mode=mode), label="graph")

    def program(*leaves):
        steps = graph.program(*leaves)
        return steps + (torch.stack([steps[-1].sum(), steps[-1].sum()]),)  # always exactly two elements

    values = list(graph.leaves) + list(mode.run(program, *graph.leaves))
    last = len(values) - 2
    names = [f"t{i}" for i in range(len(values) - 1)] + [f"torch.stack([t{last}.sum(), t{last}.sum()])"]
    index = data.draw(st.sampled_from([i for i, v in enumerate(values) if v.numel() > 1 and v.requires_grad]), label="index of y")
    y = values[index]
    with assert_raises(RuntimeError, match="scalar outputs", clause="BWD-5", what=f"backward() of y = {names[index]} with {y.numel()} elements ({mode})\n{graph!r}\n"):
        y.backward()


@pytest.mark.spec("BWD-6")
@given(data=st.data())
def test_backward_with_gradient_is_the_vector_jacobian_product(device, mode, data):
    with keeping_graphs_allowed(mode):
        graph = data.draw(graphs(device=device, requires_grad=True, dtype=torch.float64, mode=mode), label="graph")
        y = graph.output(mode=mode)
        v = data.draw(tensors(dtype=y.dtype, shape=tuple(y.shape), device=device), label="v")
        expected = torch.autograd.grad((y * v).sum(), graph.leaves, allow_unused=True, retain_graph=True)
        y.backward(gradient=v)
        for index, (leaf, want) in enumerate(zip(graph.leaves, expected)):
            if want is None:
                assert_equal(leaf.grad, None, clause="BWD-6", what=f".grad of unused leaf t{index} ({mode})")
            else:
                assert_close(leaf.grad, want, clause="BWD-6", what=f".grad of t{index} after y.backward(gradient=v) vs (y * v).sum() ({mode})")


def _give_existing_grads(leaves, data, device) -> list:
    """Give a drawn subset of ``leaves`` an existing .grad (drawn values); return each leaf's .grad before the pass."""
    before = []
    for index, leaf in enumerate(leaves):
        if data.draw(st.booleans(), label=f"t{index} starts with an existing .grad"):
            leaf.grad = data.draw(tensors(dtype=leaf.dtype, shape=tuple(leaf.shape), device=device), label=f"existing t{index}.grad")
        before.append(None if leaf.grad is None else leaf.grad.clone())
    return before


@pytest.mark.spec("BWD-7")
@pytest.mark.parametrize("spelling", sorted(ACCUMULATING_BACKWARD_PASSES))
@given(data=st.data())
def test_inputs_restricts_which_leaves_get_gradients(device, mode, spelling, data):
    with keeping_graphs_allowed(mode):
        graph = data.draw(graphs(device=device, requires_grad=True, min_leaves=2, mode=mode), label="graph")

        def program(*leaves):
            # every leaf reaches the output, so a leaf left out of inputs= would otherwise get a gradient
            return graph.program(*leaves)[-1].sum() + sum((leaf * 0.5).sum() for leaf in leaves)

        y = mode.run(program, *graph.leaves)
        n = len(graph.leaves)
        chosen = data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n - 1), label="leaves passed as inputs")
        expected = torch.autograd.grad(y, graph.leaves, retain_graph=True)
        before = _give_existing_grads(graph.leaves, data, device)
        ACCUMULATING_BACKWARD_PASSES[spelling](y, graph.leaves, inputs=[graph.leaves[i] for i in sorted(chosen)])
        for index, (leaf, old) in enumerate(zip(graph.leaves, before)):
            had = "None" if old is None else "an existing gradient"
            if index not in chosen:
                what = f".grad of t{index} (it was {had}), which reaches the output but is not in inputs={sorted(chosen)} of `{spelling}`, should be left unchanged ({mode})"
                if old is None:
                    assert_equal(leaf.grad, None, clause="BWD-7", what=what)
                else:
                    assert_close(leaf.grad, old, clause="BWD-7", what=what, rtol=0, atol=0)
            else:
                want = expected[index] if old is None else old + expected[index]
                assert_close(leaf.grad, want, clause="BWD-7", what=f".grad of t{index} (it was {had}), in inputs={sorted(chosen)} of `{spelling}`: accumulated ({mode})")


#: how a non-leaf input is changed in place between two backward passes (pytorch/pytorch#79708)
IN_PLACE_UPDATES = {
    "p.add_(1, alpha=0.1)": lambda p: p.add_(1, alpha=0.1),
    "p.mul_(1.5)": lambda p: p.mul_(1.5),
    "p += 0.25": lambda p: p.__iadd__(0.25),
}


@pytest.mark.spec("BWD-7")
@pytest.mark.parametrize("update", sorted(IN_PLACE_UPDATES))
@given(data=st.data())
def test_inputs_accumulates_into_a_non_leaf_changed_in_place_between_passes(device, mode, update, data):
    """A non-leaf listed in ``inputs=`` gets its ``.grad`` on every pass, also after an in-place change of it.

    In a compiled mode the forward and the in-place change are each one compiled function, called every pass."""
    param = data.draw(tensors(dtype=st.sampled_from((torch.float32, torch.float64)), device=device, requires_grad=True), label="param")
    scale = data.draw(st.sampled_from((1.0, 2.0, -0.5)), label="scale")
    rounds = data.draw(st.integers(2, 3), label="passes")
    forward = mode.compile(lambda p: (p.clone() * scale).sum())
    change = mode.compile(IN_PLACE_UPDATES[update])
    p = param.clone()  # a non-leaf, as in a meta-learning inner loop
    for round_ in range(rounds):
        p.grad = None
        forward(p).backward(inputs=[p])
        what = f".grad of the non-leaf p in inputs=[p], pass {round_ + 1} of ((p.clone() * {scale}).sum()), after {round_} `{update}` ({mode})"
        if p.grad is None:
            fail("BWD-7", f"{what} is None: backward(inputs=[p]) did not accumulate into p")
        assert_close(p.grad, torch.full_like(p, scale), clause="BWD-7", what=what)
        change(p)
