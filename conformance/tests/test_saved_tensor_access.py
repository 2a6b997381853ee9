"""Saved tensors as the "Autograd mechanics" note describes them: reading them through ``grad_fn``, hooks on one
saved tensor, and the ``torch.autograd.graph`` context managers that change how they are saved.
Spec: specs/saved_tensors.md (SAVED-8..13; SAVED-1..7 are in test_saved_tensors.py)."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, assert_raises, assert_succeeds, fail
from conformance.testlib.forms import BACKWARD_PASSES
from conformance.testlib.graphs import GRAPH_DTYPES, graphs
from conformance.testlib.saved_tensors import SAVES_INPUT, SAVES_OUTPUT, record_saved_tensors
from conformance.testlib.strategies import shapes, tensors

#: every operation whose backward saves its operand or its result: source -> (operation, what it saves)
SAVING = {**{s: (op, "input") for s, op in SAVES_INPUT.items()}, **{s: (op, "output") for s, op in SAVES_OUTPUT.items()}}


def _operands(data, device, *, dtype=None):
    """A drawn tensor requiring grad (non-empty: storage is compared) and the operand an operation is applied to:
    the tensor itself (a leaf) or a non-leaf computed from it."""
    x = data.draw(tensors(dtype=dtype or st.sampled_from(GRAPH_DTYPES), shape=shapes(max_dims=2, min_side=1, max_side=3), device=device, requires_grad=True), label="x")
    operand = data.draw(st.sampled_from(["x", "x * 1.5"]), label="operand")
    return x, operand, (x if operand == "x" else x * 1.5)


def _saved_tensor_names(node) -> list[str]:
    """The names (after ``_saved_``) of the node's saved attributes that hold a tensor."""
    return [name[len("_saved_"):] for name in dir(node) if name.startswith("_saved_") and isinstance(getattr(node, name), torch.Tensor)]


# ----------------------------------------------------------------------------- SAVED-8


@pytest.mark.spec("SAVED-8")
@pytest.mark.parametrize("source", sorted(SAVING))
@given(data=st.data())
def test_saved_input_is_the_object_and_saved_output_is_a_new_one(device, mode, source, data):
    op, saves = SAVING[source]
    x, operand, t = _operands(data, device)
    y = op(t)
    names = _saved_tensor_names(y.grad_fn)
    if not names:
        fail("SAVED-8", f"`{source}` with t = {operand} should expose what it saved as `y.grad_fn._saved_*`, but {type(y.grad_fn).__name__} has no tensor-valued `_saved_` attribute")
    for name in names:
        saved = getattr(y.grad_fn, f"_saved_{name}")
        if saves == "input":
            what = f"`y.grad_fn._saved_{name}` of y = `{source}` (t = {operand}, {x.dtype}, {list(x.shape)}) is t itself"
            assert_equal(saved is t, True, clause="SAVED-8", what=what)
        else:
            what = f"`y.grad_fn._saved_{name}` of y = `{source}` (t = {operand}, {x.dtype}, {list(x.shape)})"
            assert_equal(saved is y, False, clause="SAVED-8", what=f"{what} being the object y (a saved output is unpacked into a new tensor object)")
            assert_close(saved, y, clause="SAVED-8", what=f"{what}: the value of y", rtol=0, atol=0)
            assert_equal(saved.data_ptr(), y.data_ptr(), clause="SAVED-8", what=f"{what}: its data_ptr() (the storage of y)")


# ----------------------------------------------------------------------------- SAVED-9


@pytest.mark.spec("SAVED-9")
@pytest.mark.parametrize("source", sorted(SAVING))
@given(data=st.data())
def test_reading_a_saved_tensor_after_the_graph_was_freed_raises(device, mode, source, data):
    op, _ = SAVING[source]
    x, operand, t = _operands(data, device)
    first = data.draw(st.sampled_from(sorted(BACKWARD_PASSES)), label="backward pass")
    retained_before = data.draw(st.booleans(), label="a retain_graph=True pass first")
    y = op(t)
    names = _saved_tensor_names(y.grad_fn)
    if not names:
        fail("SAVED-9", f"`{source}` should expose what it saved as `y.grad_fn._saved_*`, but {type(y.grad_fn).__name__} has none")
    before = {name: getattr(y.grad_fn, f"_saved_{name}").detach().clone() for name in names}
    loss = y.sum()
    if retained_before:
        BACKWARD_PASSES[first](loss, [x], retain_graph=True)
        for name in names:
            with assert_succeeds(clause="SAVED-9", what=f"reading `y.grad_fn._saved_{name}` of y = `{source}` after `{first}` with retain_graph=True"):
                after = getattr(y.grad_fn, f"_saved_{name}")
            assert_close(after, before[name], clause="SAVED-9", what=f"`y.grad_fn._saved_{name}` of y = `{source}` after `{first}` with retain_graph=True", rtol=0, atol=0)
    BACKWARD_PASSES[first](loss, [x])
    for name in names:
        with assert_raises(RuntimeError, match=r"already been freed[\s\S]*retain_graph", clause="SAVED-9", what=f"reading `y.grad_fn._saved_{name}` of y = `{source}` (t = {operand}) after `{first}` without retain_graph"):
            getattr(y.grad_fn, f"_saved_{name}")


# ----------------------------------------------------------------------------- SAVED-10


@pytest.mark.spec("SAVED-10")
@pytest.mark.parametrize("source", sorted(SAVES_INPUT))
@given(data=st.data())
def test_hooks_on_one_saved_tensor(device, mode, source, data):
    """Hooks on each saved tensor of an operation saving its input; unpack returns k times the packed tensor,
    so backward computes the derivative at k * t."""
    op = SAVES_INPUT[source]
    x, operand, t = _operands(data, device, dtype=torch.float64)
    k = data.draw(st.sampled_from([0.5, 2.0, -1.0]), label="unpack scale k")
    y = op(t)
    names = _saved_tensor_names(y.grad_fn)
    if not names:
        fail("SAVED-10", f"`{source}` should expose what it saved as `y.grad_fn._raw_saved_*`, but {type(y.grad_fn).__name__} has none")
    packed, unpacked = [], []

    class Box:  # what pack returns: unpack must receive this very object
        def __init__(self, tensor):
            self.tensor = tensor

    def pack(tensor):
        packed.append(tensor.detach().clone())
        return Box(tensor)

    def unpack(box):
        if not isinstance(box, Box):
            fail("SAVED-10", f"the unpack hook should receive what the pack hook returned (a Box), but received {type(box).__name__}")
        unpacked.append(box)
        return box.tensor * k

    for number, name in enumerate(names, start=1):
        getattr(y.grad_fn, f"_raw_saved_{name}").register_hooks(pack, unpack)
        assert_equal(len(packed), number, clause="SAVED-10", what=f"pack calls right after registering hooks on {number} saved tensor(s) of y = `{source}`")
        assert_close(packed[-1], t, clause="SAVED-10", what=f"the tensor pack received for `_raw_saved_{name}` of y = `{source}` (t = {operand})", rtol=0, atol=0)
        read = getattr(y.grad_fn, f"_saved_{name}")
        assert_equal(len(unpacked), number, clause="SAVED-10", what=f"unpack calls after reading `y.grad_fn._saved_{name}` once")
        assert_close(read, k * t, clause="SAVED-10", what=f"`y.grad_fn._saved_{name}` read after hooks whose unpack returns {k} * t")
    y.sum().backward()
    if len(unpacked) <= len(names):
        fail("SAVED-10", f"backward through y = `{source}` should call unpack for its saved tensor(s), but unpack was called {len(unpacked) - len(names)} time(s) during backward")
    at = (k * t).detach().requires_grad_()
    (expected,) = torch.autograd.grad(op(at).sum(), at)
    grad = x.grad if operand == "x" else x.grad / 1.5
    assert_close(grad, expected, clause="SAVED-10", what=f"the gradient through y = `{source}` (t = {operand}) whose saved tensors unpack to {k} * t: the derivative at {k} * t")
    assert_equal(len(packed), len(names), clause="SAVED-10", what=f"pack calls in all (once per saved tensor of y = `{source}`, however often it is unpacked)")


# ----------------------------------------------------------------------------- SAVED-11

#: the documented ways of registering default saved-tensor hooks
DEFAULT_HOOKS = {
    "saved_tensors_hooks(pack, unpack)": lambda: torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t),
    "save_on_cpu()": lambda: torch.autograd.graph.save_on_cpu(),
    "save_on_cpu(pin_memory=False)": lambda: torch.autograd.graph.save_on_cpu(pin_memory=False),
}

MESSAGES = ["saved tensors default hooks are disabled", "no hooks (here)!", "feature X: do not use saved_tensors_hooks [1]"]


@pytest.mark.spec("SAVED-11")
@pytest.mark.parametrize("hooks", sorted(DEFAULT_HOOKS))
@given(data=st.data())
def test_disabled_saved_tensors_hooks_raise_with_the_message(device, mode, hooks, data):
    graph = data.draw(graphs(device=device, requires_grad=True, recording=True, mode=mode), label="graph")
    message = data.draw(st.sampled_from(MESSAGES), label="message")
    form = data.draw(st.sampled_from(["with", "decorator"]), label="disable_saved_tensors_hooks form")
    program = mode.compile(lambda *leaves: graph.program(*leaves)[-1].pow(2).sum())

    def body():
        y = program(*graph.leaves)  # operations record as usual
        with assert_raises(RuntimeError, match=f"^{re.escape(message)}$", clause="SAVED-11", what=f"entering `{hooks}` inside disable_saved_tensors_hooks({message!r}) ({form})"):
            with DEFAULT_HOOKS[hooks]():
                pass
        return y

    if form == "with":
        with torch.autograd.graph.disable_saved_tensors_hooks(message):
            y = body()
    else:
        y = torch.autograd.graph.disable_saved_tensors_hooks(message)(body)()
    assert_equal(y.requires_grad, True, clause="SAVED-11", what=f"requires_grad of the program's output computed inside disable_saved_tensors_hooks ({mode})\n{graph!r}\n")
    with assert_succeeds(clause="SAVED-11", what="entering saved_tensors_hooks after disable_saved_tensors_hooks exited"):
        with record_saved_tensors() as log:
            program(*graph.leaves)
    if log.count == 0:
        fail("SAVED-11", f"after disable_saved_tensors_hooks exited, the pack hook of saved_tensors_hooks should be called for the program below followed by `.pow(2).sum()` ({mode}), but it was not\n{graph!r}\n")


# ----------------------------------------------------------------------------- SAVED-12


def _packed_tensor(packed):
    """The tensor inside what save_on_cpu's pack hook returned (a tensor, or a tuple holding one)."""
    if isinstance(packed, torch.Tensor):
        return packed
    found = [item for item in packed if isinstance(item, torch.Tensor)] if isinstance(packed, tuple) else []
    return found[0] if len(found) == 1 else None


@pytest.mark.spec("SAVED-12")
@given(data=st.data())
def test_save_on_cpu_packs_cpu_copies_and_keeps_the_gradients(device, mode, data):
    graph = data.draw(graphs(device=device, requires_grad=True, recording=True, dtype=torch.float64, mode=mode), label="graph")
    pin = data.draw(st.sampled_from([None, False]), label="pin_memory argument")
    program = mode.compile(lambda *leaves: graph.program(*leaves)[-1].pow(2).sum())
    used = [leaf for leaf in graph.leaves if leaf.requires_grad]
    expected = torch.autograd.grad(program(*graph.leaves), used, allow_unused=True)
    context = torch.autograd.graph.save_on_cpu() if pin is None else torch.autograd.graph.save_on_cpu(pin_memory=pin)
    pack = context.pack_hook
    seen = []

    def recording_pack(tensor):
        packed = pack(tensor)
        seen.append((tensor.detach().clone(), packed))
        return packed

    context.pack_hook = recording_pack
    with context:
        y = program(*graph.leaves)
    if not seen:
        fail("SAVED-12", f"inside save_on_cpu(), the program below followed by `.pow(2).sum()` ({mode}) saved nothing through its pack hook\n{graph!r}\n")
    for index, (original, packed) in enumerate(seen):
        tensor = _packed_tensor(packed)
        if tensor is None:
            fail("SAVED-12", f"save_on_cpu's pack hook returned {type(packed).__name__} holding no single tensor for saved tensor {index}")
        assert_equal(tensor.device.type, "cpu", clause="SAVED-12", what=f"the device of saved tensor {index} ({str(original.dtype)}{list(original.shape)} on {original.device}) as save_on_cpu packed it")
        assert_close(tensor, original, clause="SAVED-12", what=f"saved tensor {index} as save_on_cpu packed it, against the tensor saved", rtol=0, atol=0)
    got = torch.autograd.grad(y, used, allow_unused=True)
    for index, (g, want) in enumerate(zip(got, expected)):
        if want is None:
            assert_equal(g, None, clause="SAVED-12", what=f"gradient of unused leaf {index} under save_on_cpu")
        else:
            assert_close(g, want, clause="SAVED-12", what=f"gradient of leaf {index} with the forward under save_on_cpu ({mode}), against without it\n{graph!r}\n")


# ----------------------------------------------------------------------------- SAVED-13

#: in-place changes of a saved tensor h: source -> change
CHANGES = {
    "h.mul_(10)": lambda h: h.mul_(10),
    "h.add_(1.5)": lambda h: h.add_(1.5),
    "h.sin_()": lambda h: h.sin_(),
    "h.zero_()": lambda h: h.zero_(),
}


@pytest.mark.spec("SAVED-13")
@pytest.mark.parametrize("source", sorted(SAVING))
@given(data=st.data())
def test_allow_mutation_on_saved_tensors_keeps_the_gradient_of_the_unchanged_value(device, mode, source, data):
    op, saves = SAVING[source]
    x = data.draw(tensors(dtype=st.sampled_from(GRAPH_DTYPES), shape=shapes(max_dims=2, max_side=3), device=device, requires_grad=True), label="x")
    change = data.draw(st.sampled_from(sorted(CHANGES)), label="in-place change of the saved tensor h")

    def program(x):
        if saves == "input":
            h = x.clone()  # saved by op
            loss = op(h).sum()
        else:
            h = op(x)  # saved by op as its result
            loss = h.sum()
        CHANGES[change](h)
        return loss, h

    (expected,) = torch.autograd.grad(op(x).sum(), x)
    what = f"the forward `{source}` (h = {'x.clone() saved as input' if saves == 'input' else 'its result'}), then `{change}`, then backward, all inside allow_mutation_on_saved_tensors() ({mode})"
    with torch.autograd.graph.allow_mutation_on_saved_tensors():
        loss, h = mode.run(program, x)
        with assert_succeeds(clause="SAVED-13", what=what):
            loss.backward()
    base = x.detach().clone() if saves == "input" else op(x.detach())
    assert_close(h, CHANGES[change](base), clause="SAVED-13", what=f"h after {what}: the in-place change took effect")
    assert_close(x.grad, expected, clause="SAVED-13", what=f"x.grad after {what}: the gradient of the unchanged value")
