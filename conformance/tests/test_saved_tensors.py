"""Saved tensors: what the graph keeps alive for backward.  Spec: specs/saved_tensors.md.

Every check counts the tensors an operation saves through
``torch.autograd.graph.saved_tensors_hooks`` (``conformance/testlib/saved_tensors.py``),
so memory facts are exact on every device, not sampled from an allocator.
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, fail
from conformance.testlib.forms import BACKWARD_PASSES, FREEZE_MODULE
from conformance.testlib.graphs import GRAPH_DTYPES, graphs
from conformance.testlib.grad_modes import INFERENCE_MODE, NO_GRAD, SET_GRAD_DISABLED
from conformance.testlib.networks import networks
from conformance.testlib.saved_tensors import SavedTensorLog, record_saved_tensors
from conformance.testlib.strategies import broadcastable_shapes, shapes, tensors

#: Every documented way of turning grad mode off (SAVED-2).
GRAD_OFF = {
    **{f"no_grad {form}": run for form, run in NO_GRAD.items()},
    **{f"set_grad_enabled(False) {form}": run for form, run in SET_GRAD_DISABLED.items()},
}


def _saving_program(graph):
    """The graph's program, its output squared: ``pow`` saves its input, so in grad mode something is always saved."""
    return lambda *leaves: graph.program(*leaves)[-1].pow(2)


def _assert_nothing_saved(log: SavedTensorLog, *, clause: str, what: str) -> None:
    __tracebackhide__ = True
    if log.count:
        fail(clause, f"{what} should save nothing for backward, but it saved {log.describe()}")


def _matches(saved: torch.Tensor, expected: torch.Tensor) -> bool:
    return (
        saved.shape == expected.shape
        and saved.dtype == expected.dtype
        and saved.device == expected.device
        and torch.equal(saved.detach().cpu(), expected.detach().cpu())
    )


# ----------------------------------------------------------------------------- SAVED-1

#: The documented examples: form -> (callable, which tensors it saves given the inputs and the result)
SAVING_OPS: dict[str, tuple[Callable, Callable]] = {
    "a * b": (lambda a, b: a * b, lambda a, b, y: [a, b]),
    "torch.mul(a, b)": (lambda a, b: torch.mul(a, b), lambda a, b, y: [a, b]),
    "a.mul(b)": (lambda a, b: a.mul(b), lambda a, b, y: [a, b]),
    "x.pow(2)": (lambda a, b: a.pow(2), lambda a, b, y: [a]),
    "x ** 2": (lambda a, b: a**2, lambda a, b, y: [a]),
    "torch.pow(x, 2)": (lambda a, b: torch.pow(a, 2), lambda a, b, y: [a]),
    "torch.exp(x)": (lambda a, b: torch.exp(a), lambda a, b, y: [y]),
    "x.exp()": (lambda a, b: a.exp(), lambda a, b, y: [y]),
}


@pytest.mark.spec("SAVED-1")
@pytest.mark.parametrize("form", list(SAVING_OPS))
@given(data=st.data())
def test_recorded_operation_saves_what_its_backward_needs(device, mode, form, data):
    dtype = data.draw(st.sampled_from(GRAPH_DTYPES), label="dtype")
    a = data.draw(tensors(dtype=dtype, shape=shapes(max_dims=3), device=device, requires_grad=True), label="a")
    b = data.draw(tensors(dtype=dtype, shape=broadcastable_shapes(tuple(a.shape)), device=device, requires_grad=True), label="b")
    run, expected_saved = SAVING_OPS[form]
    with record_saved_tensors() as log:
        y = mode.run(run, a, b)
    saved = log.saved()  # y keeps its graph, so everything it packed is still held
    expected = expected_saved(a, b, y)
    names = {id(a): "a", id(b): "b", id(y): "the result"}
    what = f"`{form}` in grad mode (a {list(a.shape)}, b {list(b.shape)}, {dtype}; {mode}) should save {[names[id(t)] for t in expected]}"
    assert_equal(len(saved), len(expected), clause="SAVED-1", what=f"{what}; the number of pack-hook calls")
    unmatched = list(range(len(saved)))  # indices: each saved tensor answers for one expected tensor
    for tensor in expected:
        index = next((i for i in unmatched if _matches(saved[i], tensor)), None)
        if index is None:
            packed = ", ".join(f"{str(s.dtype)}{list(s.shape)}" for s in saved)
            fail("SAVED-1", f"{what}; the pack hook never received {names[id(tensor)]} (it received: {packed})")
        unmatched.remove(index)


# ----------------------------------------------------------------------------- SAVED-2, SAVED-3


#: Every documented way of recording nothing, each carrying the clause it checks:
#: (clause, form name, runner) -> one test id per form.
RECORDING_OFF = [
    *(pytest.param("SAVED-2", form, run, marks=pytest.mark.spec("SAVED-2"), id=form) for form, run in sorted(GRAD_OFF.items())),
    *(
        pytest.param("SAVED-3", f"inference_mode ({form})", run, marks=pytest.mark.spec("SAVED-3"), id=f"inference_mode {form}")
        for form, run in sorted(INFERENCE_MODE.items())
    ),
]


def _run_not_recording(mode, clause: str, run, program, *args):
    """``program(*args)`` inside the form ``run``: the grad-mode form inside the compiled program for SAVED-2;
    for SAVED-3 the compiled program is called inside ``inference_mode`` (ambient).

    inference_mode entered *inside* a compiled program crashes compilation on torch 2.13 (the recursive and bare
    decorator forms in dynamo; view ops of an input in AOTAutograd, pytorch/pytorch#180823) and leaves inference
    mode switched on after the error: a divergence of grad mode, checked by grad_mode's tests, not of what is saved."""
    if clause == "SAVED-3":
        compiled = mode.compile(program)
        return run(lambda: compiled(*args))
    return mode.run(lambda *args: run(lambda: program(*args)), *args)


@pytest.mark.parametrize(("clause", "form", "run"), RECORDING_OFF)
@given(data=st.data())
def test_operations_save_nothing_when_not_recording(device, mode, clause, form, run, data):
    graph = data.draw(graphs(device=device, requires_grad=True, mode=mode), label="graph")
    program = _saving_program(graph)
    with record_saved_tensors() as log:
        _run_not_recording(mode, clause, run, program, *graph.leaves)
    _assert_nothing_saved(log, clause=clause, what=f"inside {form} ({mode}), the program below followed by `.pow(2)`\n{graph!r}\n")


@pytest.mark.parametrize(("clause", "form", "run"), RECORDING_OFF)
@given(data=st.data())
def test_module_forward_saves_nothing_when_not_recording(device, mode, clause, form, run, data):
    net = data.draw(networks(device=device), label="network")
    net.batch.requires_grad_(data.draw(st.booleans(), label="input requires grad"))
    with record_saved_tensors() as log:
        _run_not_recording(mode, clause, run, net.module, net.batch)
    _assert_nothing_saved(log, clause=clause, what=f"inside {form} ({mode}), the forward of {net!r} (parameters requiring grad)")


# ----------------------------------------------------------------------------- SAVED-4

@pytest.mark.spec("SAVED-4")
@given(data=st.data())
def test_operations_on_tensors_not_requiring_grad_save_nothing(device, mode, data):
    graph = data.draw(graphs(device=device, requires_grad=False, mode=mode), label="graph")
    with record_saved_tensors() as log:
        mode.run(_saving_program(graph), *graph.leaves)
    _assert_nothing_saved(log, clause="SAVED-4", what=f"in grad mode ({mode}), the program below (no leaf requires grad) followed by `.pow(2)`\n{graph!r}\n")


@pytest.mark.spec("SAVED-4")
@pytest.mark.parametrize("freeze", sorted(FREEZE_MODULE))
@given(data=st.data())
def test_frozen_module_forward_saves_nothing(device, mode, freeze, data):
    net = data.draw(networks(device=device), label="network")
    FREEZE_MODULE[freeze](net.module)
    module = mode.module(net.module)
    with record_saved_tensors() as log:
        module(net.batch)
    _assert_nothing_saved(log, clause="SAVED-4", what=f"in grad mode ({mode}), the forward of {net!r} frozen via `{freeze}`, input not requiring grad")


# ----------------------------------------------------------------------------- SAVED-5


def _check_release(log: SavedTensorLog, y: torch.Tensor, leaves, first: str, subject: str) -> None:
    __tracebackhide__ = True
    held = log.alive()  # saved by y's graph (steps whose results were dropped already released theirs)
    if held == 0:
        fail("SAVED-5", f"the graph of {subject} holds no saved tensor, so its release cannot be checked (it ends in `.pow(2)`, which saves its input)")
    BACKWARD_PASSES[first](y, leaves, retain_graph=True)
    assert_equal(log.alive(), held, clause="SAVED-5", what=f"after `{first}` with retain_graph=True, of the {held} tensors the graph of {subject} saved, the number it still holds")
    BACKWARD_PASSES[first](y, leaves)
    assert_equal(log.alive(), 0, clause="SAVED-5", what=f"after a second `{first}` without retain_graph, of the {held} tensors the graph of {subject} saved, the number it still holds")


@pytest.mark.spec("SAVED-5")
@pytest.mark.parametrize("first", sorted(BACKWARD_PASSES))
@given(data=st.data())
def test_backward_releases_saved_tensors_unless_retained(device, mode, first, data):
    graph = data.draw(graphs(device=device, requires_grad=True, mode=mode), label="graph")
    program = _saving_program(graph)
    with record_saved_tensors() as log:
        y = mode.run(lambda *leaves: program(*leaves).sum(), *graph.leaves)
    _check_release(log, y, graph.leaves, first, f"the program below followed by `.pow(2).sum()` ({mode})\n{graph!r}\n")


@pytest.mark.spec("SAVED-5")
@pytest.mark.parametrize("first", sorted(BACKWARD_PASSES))
@given(data=st.data())
def test_backward_releases_a_modules_saved_tensors_unless_retained(device, mode, first, data):
    net = data.draw(networks(device=device), label="network")
    with record_saved_tensors() as log:
        y = mode.run(lambda batch: net.module(batch).pow(2).sum(), net.batch)
    _check_release(log, y, list(net.module.parameters()), first, f"the forward of {net!r} followed by `.pow(2).sum()` ({mode})")


# ----------------------------------------------------------------------------- SAVED-6

#: Forms whose gradient d/dx sum(x*x) is 2x computed from saved copies of x.
SQUARES = {
    "x.pow(2)": lambda x: x.pow(2),
    "x ** 2": lambda x: x**2,
    "torch.pow(x, 2)": lambda x: torch.pow(x, 2),
    "x * x": lambda x: x * x,
}


@pytest.mark.spec("SAVED-6")
@pytest.mark.parametrize("square", sorted(SQUARES))
@given(data=st.data())
def test_backward_uses_what_the_unpack_hook_returns(device, mode, square, data):
    x = data.draw(tensors(dtype=torch.float64, shape=shapes(max_dims=3), device=device, requires_grad=True), label="x")
    scale = data.draw(st.sampled_from([0.0, 0.5, 2.0, 4.0, -1.0]), label="unpack scale k")
    with record_saved_tensors(unpack_scale=scale):
        y = mode.run(lambda x: SQUARES[square](x).sum(), x)
    y.backward()
    what = f"the gradient of `{square}.sum()` ({mode}) when the unpack hook returns k={scale} times each saved tensor (expected 2*k*x)"
    assert_close(x.grad, 2 * scale * x.detach(), clause="SAVED-6", what=what)


# ----------------------------------------------------------------------------- SAVED-7

EVAL_FORMS = {"module.eval()": lambda m: m.eval(), "module.train(False)": lambda m: m.train(False)}


@pytest.mark.spec("SAVED-7")
@pytest.mark.parametrize("form", sorted(EVAL_FORMS))
@given(data=st.data())
def test_eval_mode_saves_what_train_mode_saves(device, mode, form, data):
    net = data.draw(networks(device=device), label="network")
    module = mode.module(net.module)  # one compiled module, called in training mode, then in evaluation mode
    with record_saved_tensors() as in_train:
        module(net.batch)
    EVAL_FORMS[form](net.module)
    with record_saved_tensors() as in_eval:
        module(net.batch)
    if in_eval.count == 0:
        fail("SAVED-7", f"after `{form}`, the forward of {net!r} in grad mode ({mode}) saved nothing for backward; in training mode it saved {in_train.describe()}")
    assert_equal(
        list(zip(in_eval.shapes, in_eval.dtypes)),
        list(zip(in_train.shapes, in_train.dtypes)),
        clause="SAVED-7",
        what=f"after `{form}`, the (shape, dtype) of each tensor the forward of {net!r} saves ({mode}), compared with training mode,",
    )
