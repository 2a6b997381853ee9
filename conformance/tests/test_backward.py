"""backward(): retain_graph, create_graph, gradient and inputs.  Spec: specs/backward.md."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, assert_raises, assert_succeeds, fail
from conformance.testlib.forms import BACKWARD_PASSES
from conformance.testlib.graphs import graphs
from conformance.testlib.saved_tensors import SAVES_NOTHING, record_saved_tensors
from conformance.testlib.strategies import tensors

RETAIN_MATCH = "retain_graph"


def _saving_loss(graph):
    """The graph's output squared and summed: ``pow`` saves its input, so the graph holds saved tensors."""
    return (graph.output() ** 2).sum()


@pytest.mark.spec("BWD-1")
@pytest.mark.parametrize("first", sorted(BACKWARD_PASSES))
@pytest.mark.parametrize("second", sorted(BACKWARD_PASSES))
@given(data=st.data())
def test_second_pass_through_a_freed_graph_raises(device, first, second, data):
    graph = data.draw(graphs(device=device, requires_grad=True), label="graph")
    y = _saving_loss(graph)
    BACKWARD_PASSES[first](y, graph.leaves)
    with assert_raises(RuntimeError, match=RETAIN_MATCH, clause="BWD-1", what=f"`{second}` after `{first}` without retain_graph\n{graph!r}\n"):
        BACKWARD_PASSES[second](y, graph.leaves)


@pytest.mark.spec("BWD-2")
@pytest.mark.parametrize("first", sorted(BACKWARD_PASSES))
@pytest.mark.parametrize("second", sorted(BACKWARD_PASSES))
@given(data=st.data())
def test_retain_graph_allows_a_second_pass(device, first, second, data):
    graph = data.draw(graphs(device=device, requires_grad=True, dtype=torch.float64), label="graph")
    # the reference comes from a graph of its own, so nothing here depends on the graph under test being kept
    single = torch.autograd.grad(_saving_loss(graph), graph.leaves, allow_unused=True)
    y = _saving_loss(graph)
    BACKWARD_PASSES[first](y, graph.leaves, retain_graph=True)
    before = [None if leaf.grad is None else leaf.grad.clone() for leaf in graph.leaves]
    with assert_succeeds(clause="BWD-2", what=f"`{second}` after `{first}` with retain_graph=True\n{graph!r}\n"):
        returned = BACKWARD_PASSES[second](y, graph.leaves)
    for index, (leaf, old, grad) in enumerate(zip(graph.leaves, before, single)):
        if grad is None:
            continue
        if returned is not None:  # torch.autograd.grad returns the gradients
            assert_close(returned[index], grad, clause="BWD-2", what=f"gradient of t{index} returned by the retained second pass `{second}`")
        else:
            expected = grad if old is None else old + grad
            assert_close(leaf.grad, expected, clause="BWD-2", what=f".grad of t{index} after the retained second pass `{second}` (accumulated)")


@pytest.mark.spec("BWD-3")
@pytest.mark.parametrize("first", sorted(BACKWARD_PASSES))
@given(data=st.data())
def test_create_graph_implies_retain_graph(device, first, data):
    graph = data.draw(graphs(device=device, requires_grad=True), label="graph")
    y = _saving_loss(graph)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # backward(create_graph=True) warns about a reference cycle
        BACKWARD_PASSES[first](y, graph.leaves, create_graph=True)
    with assert_succeeds(clause="BWD-3", what=f"a second pass after `{first}` with create_graph=True"):
        torch.autograd.grad(y, graph.leaves, allow_unused=True)
    for leaf in graph.leaves:
        leaf.grad = None  # break the parameter <-> gradient reference cycle create_graph makes


@pytest.mark.spec("BWD-4")
@pytest.mark.parametrize("source", sorted(SAVES_NOTHING))
@given(data=st.data())
def test_graph_without_saved_tensors_can_be_traversed_again(device, source, data):
    x = data.draw(tensors(dtype=torch.float64, shape=st.tuples(st.integers(1, 3), st.integers(1, 3)), device=device, requires_grad=True), label="x")
    with record_saved_tensors() as log:
        SAVES_NOTHING[source](x.detach().requires_grad_())
    if log.count:
        fail("BWD-4", f"`{source}` (sums, additions, views) should save nothing for backward, but it saved {log.describe()}")
    y = SAVES_NOTHING[source](x)
    y.backward()
    single = x.grad.clone()
    with assert_succeeds(clause="BWD-4", what=f"a second backward through `{source}` without retain_graph"):
        y.backward()
    assert_close(x.grad, 2 * single, clause="BWD-4", what=f"x.grad after two passes through `{source}`")


@pytest.mark.spec("BWD-5")
@given(data=st.data())
def test_non_scalar_backward_needs_a_gradient(device, data):
    graph = data.draw(graphs(device=device, requires_grad=True), label="graph")
    values = graph.run()
    last = len(values) - 1
    names = [f"t{i}" for i in range(len(values))] + [f"torch.stack([t{last}.sum(), t{last}.sum()])"]
    values.append(torch.stack([values[last].sum(), values[last].sum()]))  # always exactly two elements
    index = data.draw(st.sampled_from([i for i, v in enumerate(values) if v.numel() > 1 and v.requires_grad]), label="index of y")
    y = values[index]
    with assert_raises(RuntimeError, match="scalar outputs", clause="BWD-5", what=f"backward() of y = {names[index]} with {y.numel()} elements\n{graph!r}\n"):
        y.backward()


@pytest.mark.spec("BWD-6")
@given(data=st.data())
def test_backward_with_gradient_is_the_vector_jacobian_product(device, data):
    graph = data.draw(graphs(device=device, requires_grad=True, dtype=torch.float64), label="graph")
    y = graph.output()
    v = data.draw(tensors(dtype=y.dtype, shape=tuple(y.shape), device=device), label="v")
    expected = torch.autograd.grad((y * v).sum(), graph.leaves, allow_unused=True, retain_graph=True)
    y.backward(gradient=v)
    for index, (leaf, want) in enumerate(zip(graph.leaves, expected)):
        if want is None:
            assert_equal(leaf.grad, None, clause="BWD-6", what=f".grad of unused leaf t{index}")
        else:
            assert_close(leaf.grad, want, clause="BWD-6", what=f".grad of t{index} after y.backward(gradient=v) vs (y * v).sum()")


def _give_existing_grads(leaves, data, device) -> list:
    """Give a drawn subset of ``leaves`` an existing .grad (drawn values); return each leaf's .grad before the pass."""
    before = []
    for index, leaf in enumerate(leaves):
        if data.draw(st.booleans(), label=f"t{index} starts with an existing .grad"):
            leaf.grad = data.draw(tensors(dtype=leaf.dtype, shape=tuple(leaf.shape), device=device), label=f"existing t{index}.grad")
        before.append(None if leaf.grad is None else leaf.grad.clone())
    return before


@pytest.mark.spec("BWD-7")
@given(data=st.data())
def test_inputs_restricts_which_leaves_get_gradients(device, data):
    graph = data.draw(graphs(device=device, requires_grad=True, min_leaves=2), label="graph")
    # every leaf reaches the output, so a leaf left out of inputs= would otherwise get a gradient
    y = graph.output().sum() + sum((leaf * 0.5).sum() for leaf in graph.leaves)
    n = len(graph.leaves)
    chosen = data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n - 1), label="leaves passed as inputs")
    expected = torch.autograd.grad(y, graph.leaves, retain_graph=True)
    before = _give_existing_grads(graph.leaves, data, device)
    y.backward(inputs=[graph.leaves[i] for i in sorted(chosen)])
    for index, (leaf, old) in enumerate(zip(graph.leaves, before)):
        had = "None" if old is None else "an existing gradient"
        if index not in chosen:
            what = f".grad of t{index} (it was {had}), which reaches the output but is not in inputs={sorted(chosen)}, should be left unchanged"
            if old is None:
                assert_equal(leaf.grad, None, clause="BWD-7", what=what)
            else:
                assert_close(leaf.grad, old, clause="BWD-7", what=what, rtol=0, atol=0)
        else:
            want = expected[index] if old is None else old + expected[index]
            assert_close(leaf.grad, want, clause="BWD-7", what=f".grad of t{index} (it was {had}), in inputs={sorted(chosen)}: accumulated")


#: how a non-leaf input is changed in place between two backward passes (pytorch/pytorch#79708)
IN_PLACE_UPDATES = {
    "p.add_(1, alpha=0.1)": lambda p: p.add_(1, alpha=0.1),
    "p.mul_(1.5)": lambda p: p.mul_(1.5),
    "p += 0.25": lambda p: p.__iadd__(0.25),
}


@pytest.mark.spec("BWD-7")
@pytest.mark.parametrize("update", sorted(IN_PLACE_UPDATES))
@given(data=st.data())
def test_inputs_accumulates_into_a_non_leaf_changed_in_place_between_passes(device, update, data):
    """A non-leaf listed in ``inputs=`` gets its ``.grad`` on every pass, also after an in-place change of it."""
    param = data.draw(tensors(dtype=st.sampled_from((torch.float32, torch.float64)), device=device, requires_grad=True), label="param")
    scale = data.draw(st.sampled_from((1.0, 2.0, -0.5)), label="scale")
    rounds = data.draw(st.integers(2, 3), label="passes")
    p = param.clone()  # a non-leaf, as in a meta-learning inner loop
    for round_ in range(rounds):
        p.grad = None
        (p.clone() * scale).sum().backward(inputs=[p])
        what = f".grad of the non-leaf p in inputs=[p], pass {round_ + 1} of ((p.clone() * {scale}).sum()), after {round_} `{update}`"
        if p.grad is None:
            fail("BWD-7", f"{what} is None: backward(inputs=[p]) did not accumulate into p")
        assert_close(p.grad, torch.full_like(p, scale), clause="BWD-7", what=what)
        IN_PLACE_UPDATES[update](p)
