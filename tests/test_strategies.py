"""Hypothesis strategies for tensors and random graphs (conformance/testlib/strategies.py, graphs.py)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from conformance.testlib.graphs import GRAPH_DTYPES, Graph, aliases_an_operand, graphs, recorded_leaves, unrelated_leaves
from conformance.testlib.ops import ops_by_name
from conformance.testlib.strategies import (
    COMPLEX_DTYPES,
    DIFFERENTIABLE_DTYPES,
    FLOATING_DTYPES,
    NON_DIFFERENTIABLE_DTYPES,
    broadcastable_shapes,
    shapes,
    tensors,
)

FAST = settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SEARCH = settings(max_examples=300, database=None, deadline=None)


def assert_leaf(tensor: torch.Tensor) -> None:
    assert tensor.is_leaf
    assert tensor.grad_fn is None
    assert tensor.grad is None


def assert_identical(first: torch.Tensor, second: torch.Tensor) -> None:
    torch.testing.assert_close(first, second, rtol=0, atol=0, equal_nan=True)


# ----------------------------------------------------------------------------- tensors


@FAST
@given(tensors(dtype=torch.float64, shape=(2, 3), device="cpu", requires_grad=True))
def test_tensors_honours_fixed_arguments(tensor):
    assert tensor.dtype == torch.float64
    assert tensor.shape == (2, 3)
    assert tensor.device == torch.device("cpu")
    assert tensor.requires_grad
    assert_leaf(tensor)


@FAST
@given(
    tensors(
        dtype=st.sampled_from([torch.float32, torch.int16, torch.bool]),
        shape=st.sampled_from([(1,), (2, 2), ()]),
        device=st.sampled_from(["cpu", torch.device("cpu")]),
        requires_grad=False,
    )
)
def test_tensors_honours_strategy_valued_arguments(tensor):
    assert tensor.dtype in (torch.float32, torch.int16, torch.bool)
    assert tensor.shape in ((1,), (2, 2), ())
    assert tensor.device.type == "cpu"
    assert not tensor.requires_grad
    assert_leaf(tensor)


@FAST
@given(tensors(dtype=st.sampled_from(DIFFERENTIABLE_DTYPES), requires_grad=st.booleans()))
def test_tensors_with_drawn_requires_grad_are_leaves(tensor):
    assert tensor.dtype in DIFFERENTIABLE_DTYPES
    assert isinstance(tensor.requires_grad, bool)
    assert_leaf(tensor)


@FAST
@given(tensors(dtype=st.sampled_from(COMPLEX_DTYPES), requires_grad=True))
def test_complex_tensors_may_require_grad(tensor):
    assert tensor.is_complex() and tensor.requires_grad


@FAST
@given(tensors(dtype=torch.float64, low=0.5, high=1.5, shape=shapes(min_dims=1)))
def test_floating_values_stay_within_low_and_high(tensor):
    assert bool(((tensor >= 0.5) & (tensor <= 1.5)).all())


@FAST
@given(tensors())
def test_default_tensors_are_floating_leaves_without_grad(tensor):
    assert tensor.dtype in FLOATING_DTYPES
    assert not tensor.requires_grad
    assert tensor.dim() <= 3 and all(side <= 4 for side in tensor.shape)


@pytest.mark.parametrize("condition", [lambda t: t.dim() == 0, lambda t: t.dim() > 0 and t.numel() == 0], ids=["0-d", "empty"])
def test_default_shapes_include_edge_cases(condition):
    assert condition(find(tensors(), condition, settings=SEARCH))


@pytest.mark.parametrize("dtype", NON_DIFFERENTIABLE_DTYPES, ids=str)
@FAST
@given(data=st.data())
def test_requires_grad_with_non_differentiable_dtype_is_a_value_error(dtype, data):
    with pytest.raises(ValueError, match="non-differentiable dtype"):
        data.draw(tensors(dtype=dtype, requires_grad=True))


# ----------------------------------------------------------------------------- shapes


@FAST
@given(data=st.data(), target=shapes(max_dims=4))
def test_broadcastable_shapes_broadcast_to_the_target(data, target):
    shape = data.draw(broadcastable_shapes(target))
    assert len(shape) <= len(target)
    assert torch.broadcast_shapes(shape, target) == torch.Size(target)


@FAST
@given(shapes(min_dims=1, max_dims=2, min_side=2, max_side=3))
def test_shapes_respect_bounds(shape):
    assert 1 <= len(shape) <= 2
    assert all(2 <= side <= 3 for side in shape)


# ----------------------------------------------------------------------------- graphs


@FAST
@given(graphs())
def test_graph_repr_lists_every_leaf_and_step(graph):
    lines = repr(graph).splitlines()
    assert lines[0] == "Graph:"
    body = [line.strip() for line in lines[1:]]
    assert len(body) == graph.n_values
    for index, leaf in enumerate(graph.leaves):
        assert body[index].startswith(f"t{index} = <leaf ")
        assert f"{tuple(leaf.shape)} requires_grad={leaf.requires_grad}" in body[index]
    for step_index in range(len(graph.steps)):
        name = graph.name(len(graph.leaves) + step_index)
        assert body[len(graph.leaves) + step_index] == f"{name} = {graph.source(step_index)}"


@FAST
@given(graphs())
def test_graph_steps_only_use_earlier_values(graph):
    for step_index, step in enumerate(graph.steps):
        assert len(step.operands) == step.form.op.arity
        assert all(0 <= operand < len(graph.leaves) + step_index for operand in step.operands)


@FAST
@given(graphs())
def test_graph_runs_deterministically_on_the_same_leaves(graph):
    first, second = graph.run(), graph.run(graph.leaves)
    assert len(first) == len(second) == graph.n_values
    for a, b in zip(first, second):
        assert_identical(a, b)
    assert_identical(graph.output(), first[-1])


@FAST
@given(graphs())
def test_graph_trace_yields_each_step_with_its_source(graph):
    results = list(graph.trace())
    assert [r.source for r in results] == [graph.source(i) for i in range(len(graph.steps))]
    values = graph.run()
    for index, result in enumerate(results):
        assert_identical(result.output, values[len(graph.leaves) + index])


@pytest.mark.parametrize("leaves, steps", [((1, 1), (1, 1)), ((2, 2), (3, 4)), ((1, 3), (0, 2))])
def test_graph_sizes_respect_bounds(leaves, steps):
    @FAST
    @given(graphs(min_leaves=leaves[0], max_leaves=leaves[1], min_steps=steps[0], max_steps=steps[1]))
    def check(graph: Graph) -> None:
        assert leaves[0] <= len(graph.leaves) <= leaves[1]
        assert steps[0] <= len(graph.steps) <= steps[1]

    check()


@FAST
@given(graphs(device="cpu"))
def test_cpu_graphs_keep_every_value_on_cpu(graph):
    assert all(value.device.type == "cpu" for value in graph.run())
    assert all("device=cpu>" in line for line in repr(graph).splitlines() if "<leaf" in line)


@FAST
@given(graphs(base_shape=(2, 3)))
def test_graph_leaves_share_a_dtype_and_broadcast_to_the_base_shape(graph):
    assert len({leaf.dtype for leaf in graph.leaves}) == 1
    assert graph.leaves[0].dtype in GRAPH_DTYPES
    for leaf in graph.leaves:
        assert_leaf(leaf)
        assert torch.broadcast_shapes(leaf.shape, (2, 3)) == (2, 3)


@FAST
@given(graphs(requires_grad=True, dtype=torch.float64))
def test_graph_leaves_follow_fixed_requires_grad_and_dtype(graph):
    assert all(leaf.requires_grad and leaf.dtype == torch.float64 for leaf in graph.leaves)


@FAST
@given(graphs(ops=[ops_by_name()["sin"], ops_by_name()["add"]]))
def test_graph_uses_only_the_given_ops(graph):
    assert {step.form.op.name for step in graph.steps} <= {"sin", "add"}


@FAST
@given(graphs(requires_grad=True, dtype=torch.float64))
def test_graph_leaves_behind_agrees_with_autograd(graph):
    """Structural dependence (leaves_behind) is what autograd can reach: every op in the registry uses all its operands."""
    for index, value in enumerate(graph.run()):
        behind = graph.leaves_behind(index)
        if value.is_leaf:  # a leaf, or a step that returned a leaf operand as is
            assert any(value is graph.leaves[i] for i in behind)
            continue
        grads = torch.autograd.grad(value.sum(), graph.leaves, allow_unused=True, retain_graph=True)
        assert {i for i, g in enumerate(grads) if g is not None} == set(behind), graph


@pytest.mark.parametrize("requires_grad", [False, st.booleans()], ids=["others False", "others drawn"])
def test_recording_graphs_always_record_a_step(requires_grad):
    """``recording=True``: whatever the other leaves draw, grad mode records a step (its inputs require grad), so a test of what a mode does to recording can fail."""

    @settings(SEARCH, suppress_health_check=FAST.suppress_health_check)  # the machine is shared: a slow draw is no failure
    @given(graphs(requires_grad=requires_grad, recording=True, max_leaves=3))
    def check(graph: Graph) -> None:
        assert any(leaf.requires_grad for leaf in graph.leaves), graph
        with torch.enable_grad():
            recorded = [step for step in graph.trace() if step.output.grad_fn is not None]
        assert recorded, graph
        assert any(t.requires_grad for t in recorded[0].inputs), graph

    check()


@settings(SEARCH, suppress_health_check=FAST.suppress_health_check)
@given(graphs(requires_grad=True, computes=True))
def test_computing_graphs_end_in_a_new_tensor(graph):
    """``computes=True``: the last step's result is neither a view nor one of its operands, in any grad mode."""
    for mode in (torch.no_grad, torch.enable_grad):
        with mode():
            last = list(graph.trace())[-1]
        assert not aliases_an_operand(last.output, last.inputs), graph
        assert not any(last.output.untyped_storage().data_ptr() == t.untyped_storage().data_ptr() != 0 for t in last.inputs), graph


@FAST
@given(graphs(requires_grad=st.booleans()))
def test_recorded_leaves_are_the_leaves_requiring_grad_behind_the_output(graph):
    output = graph.output()
    expected = [graph.leaves[i] for i in graph.leaves_behind(graph.n_values - 1) if graph.leaves[i].requires_grad]
    found = recorded_leaves(output)
    assert len(found) == len(expected) and all(any(f is e for e in expected) for f in found), graph


@pytest.mark.parametrize("requires_grad", [False, st.booleans()], ids=["others False", "others drawn"])
def test_unrelated_leaf_graphs_have_a_leaf_requiring_grad_the_output_does_not_reach(requires_grad):
    """``unrelated_leaf=True``: a leaf that requires grad feeds a step's new result but not the output, which is a new
    tensor recorded from another leaf requiring grad; autograd agrees (no gradient for the one, one for the other)."""

    @settings(SEARCH, suppress_health_check=FAST.suppress_health_check)  # the machine is shared: a slow draw is no failure
    @given(graphs(requires_grad=requires_grad, unrelated_leaf=True))
    def check(graph: Graph) -> None:
        unrelated = unrelated_leaves(graph)
        assert unrelated, graph
        behind = graph.leaves_behind(graph.n_values - 1)
        assert any(graph.leaves[i].requires_grad for i in behind), graph
        results = list(graph.trace())
        assert not aliases_an_operand(results[0].output, results[0].inputs) and not aliases_an_operand(results[-1].output, results[-1].inputs), graph
        output = results[-1].output
        assert output.grad_fn is not None, graph
        requiring = [leaf for leaf in graph.leaves if leaf.requires_grad]
        grads = dict(zip(map(id, requiring), torch.autograd.grad(output.sum(), requiring, allow_unused=True)))
        assert all(grads[id(graph.leaves[i])] is None for i in unrelated), graph
        assert all(grads[id(graph.leaves[i])] is not None for i in behind if graph.leaves[i].requires_grad), graph
        assert any(unrelated[0] in graph.leaves_behind(len(graph.leaves) + s) for s in range(len(graph.steps) - 1)), graph

    check()


@pytest.mark.parametrize("bounds", [dict(max_leaves=1), dict(max_steps=1)])
def test_unrelated_leaf_graphs_need_two_leaves_and_two_steps(bounds):
    with pytest.raises(ValueError, match="unrelated_leaf=True needs at least 2 leaves and 2 steps"):
        find(graphs(unrelated_leaf=True, **bounds), lambda graph: True)
