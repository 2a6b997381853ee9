"""Edges of ``torch.autograd.grad`` and ``torch.autograd.backward``: unused inputs (``allow_unused``,
``materialize_grads``), batched vector-Jacobian products (``is_grads_batched``), backward from a tensor without
a graph, and the function form over several tensors.  Spec: specs/backward.md (BWD-8..12; BWD-1..7 are in
test_backward.py)."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, assert_raises, fail
from conformance.testlib.forms import BACKWARD_PASSES
from conformance.testlib.graphs import graphs, unrelated_leaves
from conformance.testlib.modes import keeping_graphs_allowed
from conformance.testlib.strategies import tensors


def _loss(graph, mode):
    """The graph's last value summed, compiled in a compiled ``mode``: call it on ``graph.leaves``.  The compiled
    function returns every step's value too (a program with several outputs, like a module returning its
    intermediates), so a leaf that only other outputs were computed from is an input of the compiled region."""
    program = mode.compile(lambda *leaves: (lambda values: (values[-1].sum(),) + values)(graph.program(*leaves)))
    return lambda *leaves: program(*leaves)[0]


def _used_and_unused(graph):
    """Indices of the leaves requiring grad that the last value was computed from, and of one it was not."""
    unused = unrelated_leaves(graph)
    if not unused:
        fail("BWD-8", f"the drawn program should have a leaf requiring grad that its output was not computed from\n{graph!r}\n")
    behind = graph.leaves_behind(graph.n_values - 1)
    used = [i for i, leaf in enumerate(graph.leaves) if leaf.requires_grad and i in behind]
    return used, unused


# ----------------------------------------------------------------------------- BWD-8


@pytest.mark.spec("BWD-8")
@given(data=st.data())
def test_grad_refuses_an_unused_input_unless_allowed(device, mode, data):
    with keeping_graphs_allowed(mode):
        graph = data.draw(graphs(device=device, requires_grad=True, unrelated_leaf=True, dtype=torch.float64, mode=mode), label="graph")
        used, unused = _used_and_unused(graph)
        order = data.draw(st.permutations(used + unused[:1]), label="order of the inputs")
        inputs = [graph.leaves[i] for i in order]
        loss = _loss(graph, mode)
        y = loss(*graph.leaves)
        names = ", ".join(f"t{i}" for i in order)
        with assert_raises(RuntimeError, match="allow_unused=True", clause="BWD-8", what=f"torch.autograd.grad(y, [{names}]) where y was not computed from t{unused[0]} ({mode})\n{graph!r}\n"):
            torch.autograd.grad(y, inputs, retain_graph=True)
        got = torch.autograd.grad(y, inputs, allow_unused=True)
        reference = dict(zip(used, torch.autograd.grad(loss(*graph.leaves), [graph.leaves[i] for i in used]))) if used else {}
        for i, g in zip(order, got):
            if i in unused:
                assert_equal(g, None, clause="BWD-8", what=f"the gradient of unused input t{i} from torch.autograd.grad(y, [{names}], allow_unused=True) ({mode})\n{graph!r}\n")
            else:
                assert_close(g, reference[i], clause="BWD-8", what=f"the gradient of t{i} with allow_unused=True and an unused input, against without it ({mode})")


# ----------------------------------------------------------------------------- BWD-9


@pytest.mark.spec("BWD-9")
@given(data=st.data())
def test_materialize_grads_gives_zeros_for_unused_inputs(device, mode, data):
    with keeping_graphs_allowed(mode):
        graph = data.draw(graphs(device=device, requires_grad=True, unrelated_leaf=True, dtype=st.sampled_from((torch.float32, torch.float64)), mode=mode), label="graph")
        used, unused = _used_and_unused(graph)
        order = data.draw(st.permutations(used + unused[:1]), label="order of the inputs")
        allow = data.draw(st.sampled_from(["not passed", "allow_unused=True"]), label="allow_unused")
        inputs = [graph.leaves[i] for i in order]
        loss = _loss(graph, mode)
        y = loss(*graph.leaves)
        extra = {} if allow == "not passed" else {"allow_unused": True}
        got = torch.autograd.grad(y, inputs, materialize_grads=True, retain_graph=True, **extra)
        reference = dict(zip(used, torch.autograd.grad(loss(*graph.leaves), [graph.leaves[i] for i in used]))) if used else {}
        for i, g in zip(order, got):
            leaf = graph.leaves[i]
            if i in unused:
                what = f"the gradient of unused input t{i} from torch.autograd.grad(..., materialize_grads=True, allow_unused {allow}) ({mode})\n{graph!r}\n"
                if g is None:
                    fail("BWD-9", f"{what} should be zeros, but it is None")
                assert_equal((tuple(g.shape), g.dtype, g.device), (tuple(leaf.shape), leaf.dtype, leaf.device), clause="BWD-9", what=f"(shape, dtype, device) of {what}")
                assert_close(g, torch.zeros_like(leaf), clause="BWD-9", what=what, rtol=0, atol=0)
            else:
                assert_close(g, reference[i], clause="BWD-9", what=f"the gradient of t{i} with materialize_grads=True, against without it ({mode})")
        with assert_raises(ValueError, clause="BWD-9", what=f"torch.autograd.grad(..., materialize_grads=True, allow_unused=False) ({mode})"):
            torch.autograd.grad(y, inputs, materialize_grads=True, allow_unused=False)


# ----------------------------------------------------------------------------- BWD-10


@pytest.mark.spec("BWD-10")
@given(data=st.data())
def test_is_grads_batched_equals_a_loop_over_the_batch(device, mode, data):
    with keeping_graphs_allowed(mode):
        graph = data.draw(graphs(device=device, requires_grad=True, recording=True, dtype=torch.float64, max_steps=4, mode=mode), label="graph")
        y = graph.output(mode=mode)
        inputs = [leaf for leaf in graph.leaves if leaf.requires_grad]
        batch = data.draw(st.integers(2, 3), label="batch size B")
        v = data.draw(tensors(dtype=y.dtype, shape=(batch, *y.shape), device=device), label="v (B rows)")
        rows = [torch.autograd.grad(y, inputs, v[i], retain_graph=True, allow_unused=True) for i in range(batch)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # vmap's performance warnings about fallbacks
            got = torch.autograd.grad(y, inputs, v, is_grads_batched=True, allow_unused=True)
        for index, (leaf, g) in enumerate(zip(inputs, got)):
            if rows[0][index] is None:
                assert_equal(g, None, clause="BWD-10", what=f"the batched gradient of input {index}, unused by y ({mode})")
                continue
            expected = torch.stack([row[index] for row in rows])
            assert_close(g, expected, clause="BWD-10", what=f"torch.autograd.grad(y, inputs, v, is_grads_batched=True) for input {index} {list(leaf.shape)}, B={batch}, against one call per row of v ({mode})\n{graph!r}\n")


# ----------------------------------------------------------------------------- BWD-11


@pytest.mark.spec("BWD-11")
@pytest.mark.parametrize("spelling", sorted(BACKWARD_PASSES))
@given(data=st.data())
def test_backward_from_a_tensor_without_a_graph_raises(device, mode, spelling, data):
    why = data.draw(st.sampled_from(["no leaf requires grad", "under torch.no_grad()"]), label="why y has no graph")
    graph = data.draw(graphs(device=device, requires_grad=why != "no leaf requires grad", recording=why != "no leaf requires grad", mode=mode), label="graph")
    loss = _loss(graph, mode)
    if why == "no leaf requires grad":
        y = loss(*graph.leaves)
    else:
        with torch.no_grad():
            y = loss(*graph.leaves)
    w = torch.ones((), device=device, requires_grad=True)  # what torch.autograd.grad differentiates with respect to
    with assert_raises(RuntimeError, match="does not require grad and does not have a grad_fn", clause="BWD-11", what=f"`{spelling}` where y (the program's output summed) has no graph: {why} ({mode})\n{graph!r}\n"):
        BACKWARD_PASSES[spelling](y, [w])


# ----------------------------------------------------------------------------- BWD-12

#: how the tensors and their gradients are passed to torch.autograd.backward
SEQUENCES = {"lists": list, "tuples": tuple}


@pytest.mark.spec("BWD-12")
@pytest.mark.parametrize("sequence", sorted(SEQUENCES))
@given(data=st.data())
def test_backward_of_several_tensors_sums_their_vector_jacobian_products(device, mode, sequence, data):
    graph = data.draw(graphs(device=device, requires_grad=True, recording=True, dtype=torch.float64, min_steps=2, mode=mode), label="graph")
    n = len(graph.leaves)
    count = data.draw(st.integers(2, 3), label="number of output tensors")
    picks = data.draw(st.lists(st.integers(0, len(graph.steps) - 1), min_size=count, max_size=count), label="steps whose outputs are backpropagated")
    scalar = data.draw(st.lists(st.booleans(), min_size=count, max_size=count), label="each output summed to a scalar (gradient None)")
    requiring = [i for i, leaf in enumerate(graph.leaves) if leaf.requires_grad]
    restrict = data.draw(st.one_of(st.none(), st.sets(st.sampled_from(requiring), min_size=1)), label="inputs= (None: not passed)")

    def program(*leaves):
        values = graph.program(*leaves)
        return tuple(values[p].sum() if s else values[p] for p, s in zip(picks, scalar))

    compiled = mode.compile(program)
    outputs = compiled(*graph.leaves)
    grads = [None if s else data.draw(tensors(dtype=out.dtype, shape=tuple(out.shape), device=device), label=f"gradient of output {k}") for k, (out, s) in enumerate(zip(outputs, scalar))]
    kwargs = {} if restrict is None else {"inputs": [graph.leaves[i] for i in sorted(restrict)]}
    # the reference: each output's backward() on a graph of its own
    reference = []
    for k in range(count):
        out = compiled(*graph.leaves)[k]
        out.backward(None if grads[k] is None else grads[k].clone(), **kwargs)  # a clone: .grad may take the given tensor's storage
    for leaf in graph.leaves:
        reference.append(None if leaf.grad is None else leaf.grad.clone())
        leaf.grad = None
    wrap = SEQUENCES[sequence]
    torch.autograd.backward(wrap(outputs), wrap(grads), **kwargs)
    described = f"torch.autograd.backward({sequence} of {count} outputs (steps {picks}, summed: {scalar}), their gradients{', inputs=' + str(sorted(restrict)) if restrict else ''}) ({mode})\n{graph!r}\n"
    for i in range(n):
        if reference[i] is None:
            assert_equal(graph.leaves[i].grad, None, clause="BWD-12", what=f".grad of t{i}, which no output's backward() reached, after {described}")
        else:
            assert_close(graph.leaves[i].grad, reference[i], clause="BWD-12", what=f".grad of t{i} after {described}, against each output's backward() in turn")
