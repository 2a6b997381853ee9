"""Cross-device autograd: the device under test against the CPU.  Spec: specs/cross_device.md.

Every test compares the device under test with ``cpu`` (or moves tensors
between the two), so each is declared ``@pytest.mark.devices("non-cpu")``: it
checks nothing on the CPU and skips there at collection.

In a compiled mode the user program runs through the ``mode`` fixture on both
devices: the drawn program's steps, edits and loss (``testlib/cross_device.py``),
the mixed-device graph with its ``.to()`` moves, the mixing op, the chain of
moves; backward runs through the compiled outputs.
"""

from __future__ import annotations

import operator
import re
from typing import Callable, Optional, Sequence

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_equal, assert_raises, assert_succeeds, fail
from conformance.testlib.cross_device import Record, close_enough, grad_fn_name, loss_weights, programs, run_across_devices, run_program
from conformance.testlib.forms import BACKWARD_PASSES
from conformance.testlib.graphs import GRAPH_DTYPES, graphs
from conformance.testlib.modes import Mode
from conformance.testlib.ops import OPS, OpForm
from conformance.testlib.strategies import REAL_DTYPES, dtypes, shapes, tensors

AGAINST_THE_CPU = pytest.mark.devices("non-cpu", reason="compares the device under test with the CPU")


def _both(program, device: str, mode: Mode) -> tuple[list[Record], list[Record]]:
    return run_program(program, "cpu", mode=mode), run_program(program, device, mode=mode)


def _paired(cpu: list[Record], other: list[Record], *, both_succeeded: bool = True):
    """The actions run on both devices, in order; with ``both_succeeded`` only those that raised on neither."""
    for expected, actual in zip(cpu, other):
        if both_succeeded and (expected.error or actual.error):
            continue
        yield expected, actual


def _check_close(actual: Optional[torch.Tensor], expected: Optional[torch.Tensor], *, clause: str, what: str) -> None:
    __tracebackhide__ = True
    if (actual is None) != (expected is None):
        fail(clause, f"{what}: on cpu {'None' if expected is None else 'a tensor'}, on the device under test {'None' if actual is None else 'a tensor'}")
    if actual is None:
        return
    assert_equal((actual.dtype, tuple(actual.shape)), (expected.dtype, tuple(expected.shape)), clause=clause, what=f"(dtype, shape) of {what}")
    why = close_enough(actual, expected)
    if why is not None:
        fail(clause, f"{what} differs from the CPU's beyond the {expected.dtype} tolerance\n{why}")


# ----------------------------------------------------------------------------- XDEV-1 .. -4: one program, two devices


#: The one difference XDEV-1 allows: item assignment of a Python number (``t[...] = 1.5``) into a
#: tensor of another shape is ``fill_`` on the CPU and ``copy_`` elsewhere (``copy_to`` in
#: aten/src/ATen/TensorIndexing.h fills only from a 0-dim CPU value; off the CPU the value is made on the device).
ITEM_ASSIGNMENT = "t[...] = 1.5"


def _item_assignment_recorded(cpu_name: Optional[str], other_name: Optional[str]) -> bool:
    return bool(cpu_name and other_name and re.fullmatch(r"FillBackward\d*", cpu_name) and other_name == "CopyBackwards")


@AGAINST_THE_CPU
@pytest.mark.spec("XDEV-1")
@given(data=st.data())
def test_autograd_records_the_same_graph_on_every_device(device, mode, data):
    program = data.draw(programs(requires_grad=st.booleans(), mode=mode), label="program")
    assigns_items = any(edit.form.source == ITEM_ASSIGNMENT for edit in program.edits)
    cpu, other = _both(program, device, mode)
    for expected, actual in _paired(cpu, other):
        if actual.device is not None:
            assert_equal(actual.device.type, torch.device(device).type, clause="XDEV-1", what=f"device of the result of `{actual.action}` on {device} ({mode})")
        grad_fn = expected.grad_fn if assigns_items and _item_assignment_recorded(expected.grad_fn, actual.grad_fn) else actual.grad_fn
        assert_equal(
            (actual.requires_grad, actual.is_leaf, grad_fn),
            (expected.requires_grad, expected.is_leaf, expected.grad_fn),
            clause="XDEV-1",
            what=f"(requires_grad, is_leaf, grad_fn) after `{actual.action}` on {device} (the CPU's, {mode})",
        )


@AGAINST_THE_CPU
@pytest.mark.spec("XDEV-2")
@given(data=st.data())
def test_version_counter_counts_the_same_on_every_device(device, mode, data):
    program = data.draw(programs(min_edits=1, max_edits=3, mode=mode), label="program")
    cpu, other = _both(program, device, mode)
    for expected, actual in _paired(cpu, other):
        assert_equal(actual.version, expected.version, clause="XDEV-2", what=f"_version after `{actual.action}` on {device} (the CPU's, {mode})")


@AGAINST_THE_CPU
@pytest.mark.spec("XDEV-3")
@given(data=st.data())
def test_the_same_program_fails_the_same_way_on_every_device(device, mode, data):
    program = data.draw(programs(min_edits=1, mode=mode), label="program")
    cpu, other = _both(program, device, mode)
    for expected, actual in _paired(cpu, other, both_succeeded=False):
        assert_equal(actual.action, expected.action, clause="XDEV-3", what=f"the action run next on {device} (the CPU's, {mode})")
        assert_equal(actual.error, expected.error, clause="XDEV-3", what=f"the exception type `{actual.action}` raises on {device} (the CPU's, {mode}; None: it succeeds)")
    assert_equal(len(other), len(cpu), clause="XDEV-3", what=f"the number of actions run on {device} before the program stopped (the CPU's, {mode})")


@AGAINST_THE_CPU
@pytest.mark.spec("XDEV-4")
@pytest.mark.parametrize("dtype", REAL_DTYPES, ids=str)
@given(data=st.data())
def test_values_and_gradients_agree_within_the_dtype_tolerance(device, mode, dtype, data):
    program = data.draw(programs(dtype=dtype, requires_grad=st.booleans(), mode=mode), label="program")
    cpu, other = _both(program, device, mode)
    for expected, actual in _paired(cpu, other):
        if expected.value is not None:
            _check_close(actual.value, expected.value, clause="XDEV-4", what=f"the value after `{actual.action}` on {device} ({mode})")
        for index, (got, want) in enumerate(zip(actual.grads or (), expected.grads or ())):
            _check_close(got, want, clause="XDEV-4", what=f".grad of leaf t{index} after `{actual.action}` on {device} ({mode})")


# ----------------------------------------------------------------------------- XDEV-5


@st.composite
def _placements(draw, n_leaves: int, n_steps: int, device: str) -> tuple[list[str], list[str]]:
    """A device (``cpu`` or ``device``) for every leaf and every step, both devices used."""
    choice = st.sampled_from(["cpu", device])
    leaf_devices = [draw(choice, label=f"device of leaf t{i}") for i in range(n_leaves)]
    step_devices = [draw(choice, label=f"device of step t{n_leaves + i}") for i in range(n_steps)]
    if len(set(leaf_devices + step_devices)) == 1:  # one device only: the last step runs on the other one
        step_devices[-1] = "cpu" if step_devices[-1] == device else device
    return leaf_devices, step_devices


def _gradients(form: str, loss: torch.Tensor, leaves: Sequence[torch.Tensor]) -> list[Optional[torch.Tensor]]:
    """Each leaf's gradient by the backward pass ``form`` (None for a leaf that does not require grad or gets none)."""
    wanted = [leaf for leaf in leaves if leaf.requires_grad]
    result = BACKWARD_PASSES[form](loss, wanted)
    got = iter(result) if result is not None else iter(leaf.grad for leaf in wanted)
    return [next(got) if leaf.requires_grad else None for leaf in leaves]


@AGAINST_THE_CPU
@pytest.mark.spec("XDEV-5")
@pytest.mark.parametrize("form", sorted(BACKWARD_PASSES))
@given(data=st.data())
def test_gradients_land_on_each_leaf_own_device(device, mode, form, data):
    graph = data.draw(graphs(recording=True, requires_grad=st.booleans(), mode=mode), label="graph")
    leaf_devices, step_devices = data.draw(_placements(len(graph.leaves), len(graph.steps), device), label="placements")
    cpu_leaves, _, cpu_loss = run_across_devices(graph, ["cpu"] * len(graph.leaves), ["cpu"] * len(graph.steps), mode=mode)
    expected = _gradients(form, cpu_loss, cpu_leaves)
    leaves, _, loss = run_across_devices(graph, leaf_devices, step_devices, loss_on="cpu", mode=mode)
    actual = _gradients(form, loss, leaves)
    for index, (leaf, got, want) in enumerate(zip(leaves, actual, expected)):
        what = f"the gradient of leaf t{index} (on {leaf.device}) by `{form}` ({mode})"
        if got is not None:
            assert_equal(got.device, leaf.device, clause="XDEV-5", what=f"device of {what}")
        _check_close(got, want, clause="XDEV-5", what=what)


# ----------------------------------------------------------------------------- XDEV-6, -7

BINARY_FORMS: tuple[OpForm, ...] = tuple(form for op in OPS if op.arity == 2 for form in op.forms)
#: elementwise binary forms (TensorIterator kernels): the ones that take a 0-dim CPU operand as a scalar
ELEMENTWISE_BINARY_FORMS: tuple[OpForm, ...] = tuple(f for f in BINARY_FORMS if f.op.kind == "binary" or f.op.name == "where")

#: in-place forms combining a second tensor into the first (item assignment, ``a[...] = b``, copies: it is copy-like)
INPLACE_BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], object]] = {
    "a.add_(b)": lambda a, b: a.add_(b),
    "a.sub_(b)": lambda a, b: a.sub_(b),
    "a.mul_(b)": lambda a, b: a.mul_(b),
    "a.div_(b)": lambda a, b: a.div_(b),
    "a += b": lambda a, b: operator.iadd(a, b),
    "a *= b": lambda a, b: operator.imul(a, b),
    "torch.add(a, b.detach(), out=a)": lambda a, b: torch.add(a, b.detach(), out=a),  # out= refuses operands requiring grad
}


def _operand_pair(data, device: str, *, drawn_values: bool = True):
    """Two same-shaped tensors (at least one dimension), one on the CPU and one on ``device``, in drawn order.

    Without ``drawn_values`` they hold fixed values (``loss_weights``): the values decide nothing here, and a
    compiled example that fails is shrunk faster without them (each shrink step is a compilation)."""
    dtype = data.draw(dtypes(GRAPH_DTYPES), label="dtype")
    shape = data.draw(shapes(min_dims=1, max_dims=2, min_side=1), label="shape")
    cpu_first = data.draw(st.booleans(), label="CPU operand first")
    grads = data.draw(st.tuples(st.booleans(), st.booleans()), label="requires_grad of (first, second)")
    devices = ("cpu", device) if cpu_first else (device, "cpu")
    if not drawn_values:
        return tuple(loss_weights(torch.empty(shape, dtype=dtype, device=d)).requires_grad_(g) for d, g in zip(devices, grads))
    return tuple(data.draw(tensors(dtype=dtype, shape=shape, device=d, requires_grad=g), label=f"operand on {d}") for d, g in zip(devices, grads))


@AGAINST_THE_CPU
@pytest.mark.spec("XDEV-6")
@given(data=st.data())
def test_an_op_mixing_devices_raises(device, mode, data):
    a, b = _operand_pair(data, device, drawn_values=not mode.compiled)
    forms = [form for form in BINARY_FORMS if form.op.applicable(a) and form.op.partner(a, b)]
    writes = list(INPLACE_BINARY)
    pairs = [(a, b)]
    if mode.compiled:
        # Each form is a compilation (one that raises: nothing is cached), so one of each is drawn per example;
        # each compiled function is called twice, as a user's would be: on the pair, then on the pair grown by one
        # row, for which dynamo recompiles it with dynamic shapes (automatic dynamic).
        forms = [data.draw(st.sampled_from(forms), label="binary form")]
        writes = [data.draw(st.sampled_from(writes), label="in-place form")]
        pairs.append((_grown(a), _grown(b)))
    for form in forms:
        compiled = mode.compile(form.fn)
        for x, y in pairs:
            if form.op.applicable(x) and form.op.partner(x, y):
                with assert_raises(RuntimeError, match="same device", clause="XDEV-6", what=f"`{form.source('a', 'b')}` ({_placed(x, y, mode)})"):
                    compiled(x, y)
    for source in writes:
        compiled = mode.compile(INPLACE_BINARY[source])
        for x, y in pairs:
            target = x.detach().clone()  # a tensor in-place writes are allowed on
            with assert_raises(RuntimeError, match="same device", clause="XDEV-6", what=f"`{source}` ({_placed(x, y, mode)}, a not requiring grad)"):
                compiled(target, y)


def _grown(t: torch.Tensor) -> torch.Tensor:
    """A leaf like ``t`` (device, dtype, requires_grad) with one more row: its first row repeated."""
    return torch.cat([t, t[:1]]).detach().requires_grad_(t.requires_grad)


def _placed(a: torch.Tensor, b: torch.Tensor, mode: Mode) -> str:
    return f"a on {a.device}, b on {b.device}, shape {tuple(a.shape)}, {mode}"


@AGAINST_THE_CPU
@pytest.mark.spec("XDEV-7")
@pytest.mark.parametrize("form", ELEMENTWISE_BINARY_FORMS, ids=lambda f: f.id)
@given(data=st.data())
def test_a_zero_dim_cpu_tensor_mixes_in_elementwise_ops(device, mode, form, data):
    dtype = data.draw(dtypes(GRAPH_DTYPES), label="dtype")
    scalar = data.draw(tensors(dtype=dtype, shape=(), requires_grad=True), label="0-dim CPU leaf")
    tensor = data.draw(tensors(dtype=dtype, shape=shapes(max_dims=3), device=device, requires_grad=True), label=f"leaf on {device}")
    scalar_first = data.draw(st.booleans(), label="0-dim CPU operand first")

    def apply(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return form(s, t) if scalar_first else form(t, s)

    source = form.source("s", "t") if scalar_first else form.source("t", "s")
    compiled_apply = mode.compile(apply)
    with assert_succeeds(clause="XDEV-7", what=f"`{source}` with s a 0-dim CPU tensor and t on {device} ({mode})"):
        result = compiled_apply(scalar, tensor)
    assert_equal(result.device, tensor.device, clause="XDEV-7", what=f"device of `{source}` ({mode})")
    cpu_scalar, cpu_tensor = (x.detach().cpu().requires_grad_() for x in (scalar, tensor))
    expected = apply(cpu_scalar, cpu_tensor)  # the reference: eager, on the CPU
    _check_close(result, expected, clause="XDEV-7", what=f"`{source}` ({mode})")
    (result * loss_weights(result)).sum().backward()
    (expected * loss_weights(expected)).sum().backward()
    for name, leaf, reference in (("s", scalar, cpu_scalar), ("t", tensor, cpu_tensor)):
        if leaf.grad is not None:
            assert_equal((leaf.grad.device, leaf.grad.dim()), (leaf.device, leaf.dim()), clause="XDEV-7", what=f"(device, dim) of {name}.grad through `{source}` ({mode})")
        _check_close(leaf.grad, reference.grad, clause="XDEV-7", what=f"{name}.grad through `{source}` ({mode})")


# ----------------------------------------------------------------------------- XDEV-8

#: A move of ``t`` to ``target`` (``cpu`` or the device under test) in every documented spelling: (t, target) -> moved.
MOVES: dict[str, Callable[[torch.Tensor, str], torch.Tensor]] = {
    "t.to(target)": lambda t, target: t.to(target),
    "t.to(torch.device(target))": lambda t, target: t.to(torch.device(target)),
    "t.to(other) (other on target)": lambda t, target: t.to(torch.empty((), dtype=t.dtype, device=target)),
    "t.to(target, t.dtype)": lambda t, target: t.to(target, t.dtype),
    "t.cpu() (target cpu) / t.to(target)": lambda t, target: t.cpu() if target == "cpu" else t.to(target),
    "torch.empty_like(t, device=target).copy_(t)": lambda t, target: torch.empty_like(t, device=target).copy_(t),
}


def _chain_of_moves(moves: Sequence[tuple[str, str]]) -> Callable[[torch.Tensor], tuple[torch.Tensor, ...]]:
    """The chain of ``(MOVES name, target)`` as a plain function of ``t``: the result of every move, in order."""
    plan = tuple(moves)

    def chain(t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        results = []
        for name, target in plan:
            t = MOVES[name](t, target)
            results.append(t)
        return tuple(results)

    return chain


@AGAINST_THE_CPU
@pytest.mark.spec("XDEV-8")
@given(data=st.data())
def test_moves_between_devices_are_differentiable_both_ways(device, mode, data):
    start = data.draw(st.sampled_from(["cpu", device]), label="device of t")
    t = data.draw(tensors(dtype=dtypes(REAL_DTYPES), shape=shapes(max_dims=3), device=start, requires_grad=True), label="t")
    n_moves = data.draw(st.integers(1, 4), label="number of moves")
    plan, here = [], start
    for index in range(n_moves):
        target = "cpu" if here != "cpu" else device
        plan.append((data.draw(st.sampled_from(sorted(MOVES)), label=f"move {index}"), target))
        here = target
    results = mode.run(_chain_of_moves(plan), t)
    chain = "t"
    for (name, target), moved in zip(plan, results):
        chain = f"{chain} -> {name} [{target}]"
        assert_equal(moved.device.type, torch.device(target).type, clause="XDEV-8", what=f"device after {chain} ({mode})")
        recorded = (moved.requires_grad, moved.is_leaf, moved.grad_fn is not None)
        assert_equal(recorded, (True, False, True), clause="XDEV-8", what=f"(requires_grad, is_leaf, has grad_fn) after {chain} (grad_fn {grad_fn_name(moved)}, {mode})")
    moved = results[-1]
    weights = loss_weights(moved)
    (moved * weights).sum().backward()
    if t.grad is None:
        fail("XDEV-8", f"backward through {chain} gave t no gradient ({mode})")
    assert_equal(t.grad.device, t.device, clause="XDEV-8", what=f"device of t.grad through {chain} ({mode})")
    _check_close(t.grad, weights.to(t.device), clause="XDEV-8", what=f"t.grad through {chain} (the weights at the chain's end, {mode})")
