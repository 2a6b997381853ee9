"""Multithreaded autograd: concurrent backward passes in threads on the CPU.  Spec: specs/threads.md.

Every test starts 2-4 threads behind a barrier and joins them with a timeout (``testlib/threads.py``), and
every exception a thread raises reaches the test.  The user program (the drawn graph) goes through the mode:
compiled once in the main thread, called there for the references and then in the threads.
"""

from __future__ import annotations

import threading

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, assert_raises, fail
from conformance.testlib.forms import ACCUMULATING_BACKWARD_PASSES, BACKWARD_PASSES
from conformance.testlib.graphs import graphs
from conformance.testlib.modes import keeping_graphs_allowed
from conformance.testlib.strategies import shapes, tensors, vacuous
from conformance.testlib.threads import run_in_threads

#: small programs: threads multiply the examples' cost
SMALL = shapes(max_dims=2, max_side=3)
#: seconds a thread waits for another thread's backward to finish while its own is in progress (THREAD-2)
WAIT = 10.0


def _graph(data, device, mode, **kwargs):
    return data.draw(graphs(device=device, requires_grad=True, dtype=torch.float64, mode=mode, base_shape=SMALL, max_steps=4, **kwargs), label="graph")


def _loss(graph, mode):
    """The user program: the graph's output squared and summed (``pow`` saves its input), compiled in a compiled mode."""

    def loss(*leaves):
        return (graph.program(*leaves)[-1] ** 2).sum()

    return mode.compile(loss)


def _fresh_leaves(graph, scale: float) -> list[torch.Tensor]:
    """New leaves holding the graph's values times ``scale`` > 0 (the signs, hence every mask of the program, kept)."""
    return [(leaf.detach() * scale).requires_grad_(leaf.requires_grad) for leaf in graph.leaves]


def _gradients(spelling: str, y: torch.Tensor, leaves: list[torch.Tensor], **kwargs) -> list:
    """Each leaf's gradient from the backward ``spelling``: the ones it returned, or the ``.grad`` it filled."""
    returned = BACKWARD_PASSES[spelling](y, leaves, **kwargs)
    return list(returned) if returned is not None else [leaf.grad for leaf in leaves]


def _check_gradients(got: list, want: list, *, clause: str, what: str, **tolerances) -> None:
    for index, (g, w) in enumerate(zip(got, want)):
        if w is None:
            assert_equal(g, None, clause=clause, what=f"{what}: gradient of t{index}, which the output does not depend on")
        else:
            assert_close(g, w, clause=clause, what=f"{what}: gradient of t{index}", **tolerances)


# ----------------------------------------------------------------------------- THREAD-1


@pytest.mark.spec("THREAD-1")
@given(data=st.data())
def test_concurrent_backward_on_separate_graphs(device, mode, data):
    """The note's Hogwild example: every thread runs forward and backward on its own leaves at once."""
    n = data.draw(st.integers(2, 4), label="threads")
    spelling = data.draw(st.sampled_from(sorted(BACKWARD_PASSES)), label="backward spelling")
    graph = _graph(data, device, mode)
    loss = _loss(graph, mode)
    scales = [1.0 + 0.5 * i for i in range(n)]
    # single-threaded references, on leaves of their own
    expected = []
    for scale in scales:
        leaves = _fresh_leaves(graph, scale)
        expected.append(torch.autograd.grad(loss(*leaves), leaves, allow_unused=True))
    per_thread = [_fresh_leaves(graph, scale) for scale in scales]

    def train(leaves):
        return lambda: _gradients(spelling, loss(*leaves), leaves)

    what = f"`{spelling}` run by {n} threads at once, each on its own leaves ({mode})\n{graph!r}\n"
    outcomes = run_in_threads([train(leaves) for leaves in per_thread], clause="THREAD-1", what=what)
    for index, (outcome, want) in enumerate(zip(outcomes, expected)):
        if outcome.error is not None:
            fail("THREAD-1", f"{what}: thread {index} raised {type(outcome.error).__name__}: {outcome.error}")
        _check_gradients(outcome.value, list(want), clause="THREAD-1", what=f"{what}thread {index} (leaves scaled by {scales[index]}) vs the same pass alone")


# ----------------------------------------------------------------------------- THREAD-2


@pytest.mark.spec("THREAD-2")
@pytest.mark.devices("cpu", reason="THREAD-2 is about concurrency on the CPU (a device's backward runs on that device's one worker thread)")
@given(data=st.data())
def test_backward_completes_while_another_threads_backward_is_in_progress(device, mode, data):
    """Thread A's backward reaches a tensor hook that waits for thread B's whole backward (B starts its forward
    only once A's backward is in progress): serialized backward calls would make A wait out the timeout."""
    spellings = [data.draw(st.sampled_from(sorted(BACKWARD_PASSES)), label=f"backward spelling of thread {name}") for name in "AB"]
    graph = _graph(data, device, mode)
    program = mode.compile(lambda *leaves: graph.program(*leaves)[-1])
    leaves = [_fresh_leaves(graph, 1.0), _fresh_leaves(graph, 2.0)]
    expected = [torch.autograd.grad(program(*ls).sum(), ls, allow_unused=True) for ls in [_fresh_leaves(graph, 1.0), _fresh_leaves(graph, 2.0)]]
    a_in_backward, b_done = threading.Event(), threading.Event()
    waited = {}

    def hook(grad):
        a_in_backward.set()
        waited["B finished"] = b_done.wait(WAIT)
        return grad

    def thread_a():
        y = program(*leaves[0])
        y.register_hook(hook)
        return _gradients(spellings[0], y.sum(), leaves[0])

    def thread_b():
        if not a_in_backward.wait(WAIT):
            fail("THREAD-2", f"thread A's backward did not start within {WAIT} s")
        grads = _gradients(spellings[1], program(*leaves[1]).sum(), leaves[1])
        b_done.set()
        return grads

    what = f"thread B's `{spellings[1]}` while thread A's `{spellings[0]}` is in progress ({mode})\n{graph!r}\n"
    outcomes = run_in_threads([thread_a, thread_b], clause="THREAD-2", what=what)
    for name, outcome in zip("AB", outcomes):
        if outcome.error is not None:
            fail("THREAD-2", f"{what}: thread {name} raised {type(outcome.error).__name__}: {outcome.error}")
    assert_equal(waited.get("B finished"), True, clause="THREAD-2", what=f"{what}: B's backward finished while A's waited in a hook (up to {WAIT} s)")
    for name, outcome, want in zip("AB", outcomes, expected):
        _check_gradients(outcome.value, list(want), clause="THREAD-2", what=f"{what}thread {name} vs the same pass alone")


# ----------------------------------------------------------------------------- THREAD-3


@pytest.mark.spec("THREAD-3")
@given(data=st.data())
def test_grad_through_a_shared_graph_in_threads_is_deterministic(device, mode, data):
    """The first part of the forward in the main thread, a second part in each thread; each thread's
    ``torch.autograd.grad(..., retain_graph=True)`` gives bit for bit the gradient it gives alone, and no .grad."""
    n = data.draw(st.integers(2, 4), label="threads")
    with keeping_graphs_allowed(mode):
        graph = _graph(data, device, mode)
        shared = mode.run(lambda *leaves: graph.program(*leaves)[-1], *graph.leaves)
        weights = [data.draw(tensors(dtype=shared.dtype, shape=tuple(shared.shape), device=device), label=f"weights of thread {i}") for i in range(n)]

        def second_part(i):
            return lambda: torch.autograd.grad((shared * weights[i]).sum(), graph.leaves, retain_graph=True, allow_unused=True)

        expected = [second_part(i)() for i in range(n)]
        what = f"torch.autograd.grad(retain_graph=True) in {n} threads through a graph built in the main thread ({mode})\n{graph!r}\n"
        outcomes = run_in_threads([second_part(i) for i in range(n)], clause="THREAD-3", what=what)
        for index, (outcome, want) in enumerate(zip(outcomes, expected)):
            if outcome.error is not None:
                fail("THREAD-3", f"{what}: thread {index} raised {type(outcome.error).__name__}: {outcome.error}")
            _check_gradients(list(outcome.value), list(want), clause="THREAD-3", what=f"{what}thread {index} vs the same call alone (bit for bit)", rtol=0, atol=0)
        for index, leaf in enumerate(graph.leaves):
            assert_equal(leaf.grad, None, clause="THREAD-3", what=f"{what}: t{index}.grad after only torch.autograd.grad calls")


# ----------------------------------------------------------------------------- THREAD-4


@pytest.mark.spec("THREAD-4")
@pytest.mark.parametrize("spelling", sorted(ACCUMULATING_BACKWARD_PASSES))
@given(data=st.data())
def test_concurrent_backward_into_shared_leaves_accumulates_every_pass(device, mode, spelling, data):
    """Hogwild: every thread runs forward and backward on the same leaves, several times; .grad ends as the
    sum of all the passes' gradients (only the order of the additions varies)."""
    n = data.draw(st.integers(2, 4), label="threads")
    passes = data.draw(st.integers(1, 4), label="passes per thread")
    graph = _graph(data, device, mode)
    # the output's sum plus half of every leaf's (a product: a plain sum would alias the 0-d leaves' .grad, ACCUM-2's defect): each leaf's gradient has 0.5 in every element besides what the program's
    # ops give (which may all be 0: relu of negatives, sign), so a lost or doubled pass always shows
    program = mode.compile(lambda *leaves: graph.program(*leaves)[-1].sum() + sum((leaf * 0.5).sum() for leaf in leaves))
    alone = torch.autograd.grad(program(*graph.leaves), graph.leaves, allow_unused=True)
    if all(g is None or not g.any() for g in alone):
        vacuous("every gradient of the program is zero: a lost pass would not show")
    factors = [float(i + 1) for i in range(n)]  # thread i's loss is (i + 1) times the output's sum

    def train(factor):
        def run():
            for _ in range(passes):
                ACCUMULATING_BACKWARD_PASSES[spelling](program(*graph.leaves) * factor, graph.leaves)

        return run

    what = f"`{spelling}` {passes} time(s) in each of {n} threads at once on shared leaves ({mode})\n{graph!r}\n"
    for index, outcome in enumerate(run_in_threads([train(f) for f in factors], clause="THREAD-4", what=what)):
        if outcome.error is not None:
            fail("THREAD-4", f"{what}: thread {index} raised {type(outcome.error).__name__}: {outcome.error}")
    total = passes * sum(factors)
    _check_gradients([leaf.grad for leaf in graph.leaves], [None if g is None else g * total for g in alone], clause="THREAD-4", what=f"{what}.grad: the sum of all {n * passes} passes")


# ----------------------------------------------------------------------------- THREAD-5


@pytest.mark.spec("THREAD-5")
@given(data=st.data())
def test_a_shared_graph_freed_by_one_thread_raises_in_another(device, mode, data):
    """The first part of the forward (which saves tensors) in the main thread; thread A's second part and its
    backward without retain_graph free it; thread B's backward through it then raises the retain_graph error."""
    spellings = [data.draw(st.sampled_from(sorted(BACKWARD_PASSES)), label=f"backward spelling of thread {name}") for name in "AB"]
    graph = _graph(data, device, mode)
    shared = _loss(graph, mode)(*graph.leaves)  # pow saves its input: the shared part holds saved tensors
    factors = [data.draw(st.floats(0.5, 2.0), label=f"factor of thread {name}") for name in "AB"]

    def second_part(i):
        return lambda: BACKWARD_PASSES[spellings[i]](shared * factors[i], graph.leaves)

    what = f"thread B's `{spellings[1]}` through a graph shared with thread A, after A's `{spellings[0]}` without retain_graph ({mode})\n{graph!r}\n"
    (first,) = run_in_threads([second_part(0)], clause="THREAD-5", what=what)
    if first.error is not None:
        fail("THREAD-5", f"{what}: thread A's pass raised {type(first.error).__name__}: {first.error}")
    (second,) = run_in_threads([second_part(1)], clause="THREAD-5", what=what)
    with assert_raises(RuntimeError, match="retain_graph", clause="THREAD-5", what=what):
        second.get()
