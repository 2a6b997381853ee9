"""detach() versus .data.  Spec: specs/detach.md."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, assert_raises, assert_requires_grad, assert_succeeds, fail
from conformance.testlib.graphs import graphs
from conformance.testlib.inplace_ops import DETERMINISTIC_FORMS
from conformance.testlib.saved_tensors import SAVES_INPUT
from conformance.testlib.strategies import ALL_DTYPES, dtypes, tensors

#: how a detached tensor (or .data) is changed in place (conformance/testlib/inplace_ops.py)
UPDATES = ("t.zero_()", "t.fill_(1.5)", "t.add_(1)", "t.mul_(2)", "t.copy_(src)", "t[...] = 1.5")


def _update(source: str, t: torch.Tensor) -> torch.Tensor:
    """Apply the in-place form ``source`` to ``t``; return the values it should now hold."""
    form = DETERMINISTIC_FORMS[source]
    expected = form.equivalent(t.detach().clone())
    form.apply(t)
    return expected


ALIASES = {"detach()": lambda t: t.detach(), ".data": lambda t: t.data}

shape_1d_2d = st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple)


def _leaf_and_shift(data, device):
    a = data.draw(tensors(dtype=torch.float64, shape=shape_1d_2d, device=device, requires_grad=True), label="a")
    return a, data.draw(st.floats(-3, 3), label="shift")


def _intermediate(data, device):
    a, shift = _leaf_and_shift(data, device)
    return a, a + shift


#: where the in-place change of DETACH-3 and DETACH-4 is made: inside the program that computes the loss (compiled
#: with it in a compiled mode), or by its caller, on the program's outputs
WRITERS = ("inside the program", "by the caller")


# ----------------------------------------------------------------------------- DETACH-1, -2


@pytest.mark.spec("DETACH-1")
@pytest.mark.parametrize("alias", sorted(ALIASES))
@pytest.mark.parametrize("update", UPDATES)
@given(data=st.data())
def test_detach_and_data_share_storage(device, mode, alias, update, data):
    a, shift = _leaf_and_shift(data, device)
    form = DETERMINISTIC_FORMS[update]
    expected = form.equivalent((a + shift).detach())

    def program(a, shift):  # shift is an argument: one compiled program serves every drawn value
        b = a + shift
        view = ALIASES[alias](b)
        form.apply(view)
        return b, view

    b, view = mode.run(program, a, shift)
    assert_close(b, expected, clause="DETACH-1", what=f"the original b after `{update}` with t = b.{alias} ({mode})")
    with torch.no_grad():
        b.mul_(3)
    assert_close(view, expected * 3, clause="DETACH-1", what=f"`b.{alias}` after the original was multiplied by 3 in place ({mode})")


@pytest.mark.spec("DETACH-2")
@pytest.mark.parametrize("alias", sorted(ALIASES))
@given(data=st.data())
def test_detach_and_data_are_leaves_that_do_not_require_grad(device, mode, alias, data):
    graph = data.draw(graphs(device=device, mode=mode), label="graph")
    take = ALIASES[alias]

    def program(*leaves):
        values = (*leaves, *graph.program(*leaves))
        return values, tuple(take(value) for value in values)

    values, taken_inside = mode.run(program, *graph.leaves)
    # t.alias taken inside the program, and taken by the caller on what the program returned
    for where, views in (("inside the program", taken_inside), ("by the caller", [take(value) for value in values])):
        for index, view in enumerate(views):
            what = f"t{index}.{alias} taken {where} ({mode})"
            assert_requires_grad(view, False, clause="DETACH-2", what=what)
            assert_equal((view.is_leaf, view.grad_fn), (True, None), clause="DETACH-2", what=f"(is_leaf, grad_fn) of {what}")


# ----------------------------------------------------------------------------- DETACH-3, -4


def _loss_and_write(consumer, update: str, alias: str, writer: str):
    """The program of DETACH-3 and DETACH-4: ``b = a + shift``, a loss whose backward needs ``b``, and, when
    ``writer`` is inside the program, the in-place ``update`` with ``t = b.<alias>``; it returns ``(loss, b)``."""

    def program(a, shift):
        b = a + shift
        loss = consumer(b).mean()
        if writer == "inside the program":
            DETERMINISTIC_FORMS[update].apply(ALIASES[alias](b))
        return loss, b

    return program


@pytest.mark.spec("DETACH-3")
@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("update", UPDATES)
@given(data=st.data())
def test_in_place_change_through_detach_raises_at_backward(device, mode, update, writer, data):
    a, shift = _leaf_and_shift(data, device)
    consumer = data.draw(st.sampled_from(sorted(SAVES_INPUT)), label="consumer saving its input t = b")
    program = _loss_and_write(SAVES_INPUT[consumer], update, "detach()", writer)
    where = f"mean({consumer}) (t = b), after `{update}` with t = b.detach() {writer} ({mode})"
    with assert_succeeds(clause="DETACH-3", what=f"the forward computing {where} (the error belongs to backward)"):
        loss, b = mode.run(program, a, shift)
    if writer == "by the caller":
        version = b._version
        _update(update, b.detach())
        if b._version <= version:
            fail("DETACH-3", f"b._version should grow after `{update}` with t = b.detach() (the counter is shared), it stayed {b._version} ({mode})")
    with assert_raises(RuntimeError, match="modified by an inplace operation", clause="DETACH-3", what=f"backward of {where}"):
        loss.backward()


@pytest.mark.spec("DETACH-4")
@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("update", UPDATES)
@given(data=st.data())
def test_in_place_change_through_data_is_silently_used(device, mode, update, writer, data):
    a, shift = _leaf_and_shift(data, device)
    new_values = DETERMINISTIC_FORMS[update].equivalent((a + shift).detach())
    loss, b = mode.run(_loss_and_write(_square, update, ".data", writer), a, shift)
    if writer == "by the caller":
        version = b._version
        _update(update, b.data)
        assert_equal(b._version, version, clause="DETACH-4", what=f"b._version after `{update}` with t = b.data (not tracked) ({mode})")
    with assert_succeeds(clause="DETACH-4", what=f"backward after `{update}` with t = b.data {writer} ({mode})"):
        loss.backward()
    # d mean(b*b) / da = 2 b / n with db/da = 1, evaluated at the *changed* b
    assert_close(a.grad, 2 * new_values / b.numel(), clause="DETACH-4", what=f"a.grad after `{update}` with t = b.data {writer} (computed from the changed values) ({mode})")


def _square(b):
    return b * b


def _seed_program(a):
    """The seed's example: ``b = a + 2``, ``loss = mean(b * b)``, then ``b.data.zero_()``."""
    b = a + 2
    loss = torch.mean(b * b)
    b.data.zero_()
    return loss


@pytest.mark.spec("DETACH-4")
def test_seed_example_data_zero_gives_a_silently_wrong_gradient(device, mode):
    a = torch.tensor([7.0, 0.0, 0.0], device=device, requires_grad=True)
    loss = mode.run(_seed_program, a)
    with assert_succeeds(clause="DETACH-4", what=f"the seed's backward after b.data.zero_() ({mode})"):
        loss.backward()
    assert_close(a.grad, torch.zeros(3), clause="DETACH-4", what=f"the seed's a.grad after b.data.zero_() (wrong, silently) ({mode})")
    fresh = torch.tensor([7.0, 0.0, 0.0], device=device, requires_grad=True)
    mode.run(lambda fresh: torch.mean((fresh + 2) ** 2), fresh).backward()
    assert_close(fresh.grad, torch.tensor([6.0, 4 / 3, 4 / 3]), clause="DETACH-4", what=f"the seed's correct gradient without the .data change ({mode})")


# ----------------------------------------------------------------------------- DETACH-5


@pytest.mark.spec("DETACH-5")
@given(data=st.data())
def test_detach_in_place(device, mode, data):
    graph = data.draw(graphs(device=device, requires_grad=True, mode=mode), label="graph")
    output = graph.output(mode=mode)
    if output._base is not None:
        with assert_raises(RuntimeError, match="(?i)view", clause="DETACH-5", what=f"detach_() on a view of a tensor that requires grad ({mode})"):
            output.detach_()
        return
    returned = output.detach_()
    assert_equal(returned is output, True, clause="DETACH-5", what=f"t.detach_() is t ({mode})")
    assert_requires_grad(output, False, clause="DETACH-5", what=f"t after t.detach_() ({mode})")
    assert_equal((output.is_leaf, output.grad_fn), (True, None), clause="DETACH-5", what=f"(is_leaf, grad_fn) of t after t.detach_() ({mode})")


def _computed_and_detached_in_place(a):
    """A non-view computed from ``a``, detached in place inside the program: ``(t, t.detach_())``."""
    t = a * 2 + 1
    return t, t.detach_()


@pytest.mark.spec("DETACH-5")
@given(data=st.data())
def test_detach_in_place_inside_the_program(device, mode, data):
    a, _ = _leaf_and_shift(data, device)
    output, returned = mode.run(_computed_and_detached_in_place, a)
    assert_equal(returned is output, True, clause="DETACH-5", what=f"t.detach_() is t, t = a * 2 + 1 detached inside the program ({mode})")
    assert_requires_grad(output, False, clause="DETACH-5", what=f"t = a * 2 + 1 after t.detach_() inside the program ({mode})")
    assert_equal((output.is_leaf, output.grad_fn), (True, None), clause="DETACH-5", what=f"(is_leaf, grad_fn) of t = a * 2 + 1 after t.detach_() inside the program ({mode})")


#: views detach_() must refuse ("Views cannot be detached in-place"): source -> view of t (t is 1-d or 2-d, no side 0)
VIEW_KINDS = {
    "t[...]": lambda t: t[...],
    "t[:1]": lambda t: t[:1],
    "t[0]": lambda t: t[0],
    "t.view(-1)": lambda t: t.view(-1),
    "t.unsqueeze(0)": lambda t: t.unsqueeze(0),
    "t.transpose(0, -1)": lambda t: t.transpose(0, -1),
    "t.expand(2, *t.shape)": lambda t: t.expand(2, *t.shape),
    "t.split(1)[0]": lambda t: t.split(1)[0],
    "t.unbind()[0]": lambda t: t.unbind()[0],
}


def _under_no_grad(data, device):
    _, b = _intermediate(data, device)
    with torch.no_grad():
        return b * 2


#: tensors whose views are detached in place: kind -> fn(data, device)
VIEWED_BASES = {
    "a tensor of any dtype that does not require grad": lambda data, device: data.draw(tensors(dtype=dtypes(ALL_DTYPES), shape=shape_1d_2d, device=device), label="t"),
    "a result computed under torch.no_grad()": _under_no_grad,
    "the detach() of a non-leaf": lambda data, device: _intermediate(data, device)[1].detach(),
    "a leaf that requires grad": lambda data, device: _intermediate(data, device)[0],
    "a non-leaf that requires grad": lambda data, device: _intermediate(data, device)[1],
}


def _views_of(base):
    """Every view of VIEW_KINDS, taken by the program (compiled in a compiled mode) and returned."""
    return tuple(view(base) for view in VIEW_KINDS.values())


@pytest.mark.spec("DETACH-5")
@pytest.mark.parametrize("base_kind", sorted(VIEWED_BASES))
@given(data=st.data())
def test_detach_in_place_on_a_view_raises(device, mode, base_kind, data):
    base = VIEWED_BASES[base_kind](data, device)
    for source, view in zip(VIEW_KINDS, mode.run(_views_of, base)):
        with assert_raises(RuntimeError, match="(?i)view", clause="DETACH-5", what=f"`{source}`.detach_() with t {base_kind}, the view returned by the program ({mode})"):
            view.detach_()


# ----------------------------------------------------------------------------- DETACH-6

DATA_WRITES = {
    "param.data.fill_(0.1)": lambda p, src: (p.data.fill_(0.1), torch.full_like(src, 0.1))[1],
    "param.data.copy_(src)": lambda p, src: (p.data.copy_(src), src)[1],
    "param.data = src": lambda p, src: (setattr(p, "data", src.clone()), src)[1],
}


@pytest.mark.spec("DETACH-6")
@pytest.mark.parametrize("write", sorted(DATA_WRITES))
@given(data=st.data())
def test_writing_through_data_initialises_a_parameter(device, mode, write, data):
    shape = data.draw(shape_1d_2d, label="shape")
    param = torch.nn.Parameter(data.draw(tensors(shape=shape, device=device), label="initial values"))
    source = data.draw(tensors(shape=shape, dtype=param.dtype, device=device), label="new values")
    same = param
    expected = mode.run(DATA_WRITES[write], param, source)
    assert_equal(param is same, True, clause="DETACH-6", what=f"`{write}` keeps the same parameter object ({mode})")
    assert_close(param, expected, clause="DETACH-6", what=f"parameter values after `{write}` ({mode})")
    assert_requires_grad(param, True, clause="DETACH-6", what=f"the parameter after `{write}` ({mode})")
    assert_equal((param.is_leaf, param.grad_fn), (True, None), clause="DETACH-6", what=f"(is_leaf, grad_fn) after `{write}` ({mode})")
