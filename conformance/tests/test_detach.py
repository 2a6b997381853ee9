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


def _intermediate(data, device):
    a = data.draw(tensors(dtype=torch.float64, shape=shape_1d_2d, device=device, requires_grad=True), label="a")
    shift = data.draw(st.floats(-3, 3), label="shift")
    return a, a + shift


# ----------------------------------------------------------------------------- DETACH-1, -2


@pytest.mark.spec("DETACH-1")
@pytest.mark.parametrize("alias", sorted(ALIASES))
@pytest.mark.parametrize("update", UPDATES)
@given(data=st.data())
def test_detach_and_data_share_storage(device, alias, update, data):
    _, b = _intermediate(data, device)
    view = ALIASES[alias](b)
    expected = _update(update, view)
    assert_close(b, expected, clause="DETACH-1", what=f"the original b after `{update}` with t = b.{alias}")
    with torch.no_grad():
        b.mul_(3)
    assert_close(view, expected * 3, clause="DETACH-1", what=f"`b.{alias}` after the original was multiplied by 3 in place")


@pytest.mark.spec("DETACH-2")
@pytest.mark.parametrize("alias", sorted(ALIASES))
@given(data=st.data())
def test_detach_and_data_are_leaves_that_do_not_require_grad(device, alias, data):
    graph = data.draw(graphs(device=device), label="graph")
    for index, value in enumerate(graph.run()):
        view = ALIASES[alias](value)
        assert_requires_grad(view, False, clause="DETACH-2", what=f"t{index}.{alias}")
        assert_equal((view.is_leaf, view.grad_fn), (True, None), clause="DETACH-2", what=f"(is_leaf, grad_fn) of t{index}.{alias}")


# ----------------------------------------------------------------------------- DETACH-3, -4


@pytest.mark.spec("DETACH-3")
@pytest.mark.parametrize("update", UPDATES)
@given(data=st.data())
def test_in_place_change_through_detach_raises_at_backward(device, update, data):
    _, b = _intermediate(data, device)
    consumer = data.draw(st.sampled_from(sorted(SAVES_INPUT)), label="consumer saving its input t = b")
    loss = SAVES_INPUT[consumer](b).mean()
    version = b._version
    _update(update, b.detach())
    if b._version <= version:
        fail("DETACH-3", f"b._version should grow after `{update}` with t = b.detach() (the counter is shared), it stayed {b._version}")
    with assert_raises(RuntimeError, match="modified by an inplace operation", clause="DETACH-3", what=f"backward of mean({consumer}) (t = b), after `{update}` with t = b.detach()"):
        loss.backward()


@pytest.mark.spec("DETACH-4")
@pytest.mark.parametrize("update", UPDATES)
@given(data=st.data())
def test_in_place_change_through_data_is_silently_used(device, update, data):
    a, b = _intermediate(data, device)
    loss = (b * b).mean()
    version = b._version
    new_values = _update(update, b.data)
    assert_equal(b._version, version, clause="DETACH-4", what=f"b._version after `{update}` with t = b.data (not tracked)")
    with assert_succeeds(clause="DETACH-4", what=f"backward after `{update}` with t = b.data"):
        loss.backward()
    # d mean(b*b) / da = 2 b / n with db/da = 1, evaluated at the *changed* b
    assert_close(a.grad, 2 * new_values / b.numel(), clause="DETACH-4", what=f"a.grad after `{update}` with t = b.data (computed from the changed values)")


@pytest.mark.spec("DETACH-4")
def test_seed_example_data_zero_gives_a_silently_wrong_gradient(device):
    a = torch.tensor([7.0, 0.0, 0.0], device=device, requires_grad=True)
    b = a + 2
    loss = torch.mean(b * b)
    b.data.zero_()
    with assert_succeeds(clause="DETACH-4", what="the seed's backward after b.data.zero_()"):
        loss.backward()
    assert_close(a.grad, torch.zeros(3), clause="DETACH-4", what="the seed's a.grad after b.data.zero_() (wrong, silently)")
    fresh = torch.tensor([7.0, 0.0, 0.0], device=device, requires_grad=True)
    torch.mean((fresh + 2) ** 2).backward()
    assert_close(fresh.grad, torch.tensor([6.0, 4 / 3, 4 / 3]), clause="DETACH-4", what="the seed's correct gradient without the .data change")


# ----------------------------------------------------------------------------- DETACH-5


@pytest.mark.spec("DETACH-5")
@given(data=st.data())
def test_detach_in_place(device, data):
    graph = data.draw(graphs(device=device, requires_grad=True), label="graph")
    output = graph.output()
    if output._base is not None:
        with assert_raises(RuntimeError, match="(?i)view", clause="DETACH-5", what="detach_() on a view of a tensor that requires grad"):
            output.detach_()
        return
    returned = output.detach_()
    assert_equal(returned is output, True, clause="DETACH-5", what="t.detach_() is t")
    assert_requires_grad(output, False, clause="DETACH-5", what="t after t.detach_()")
    assert_equal((output.is_leaf, output.grad_fn), (True, None), clause="DETACH-5", what="(is_leaf, grad_fn) of t after t.detach_()")


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


@pytest.mark.spec("DETACH-5")
@pytest.mark.parametrize("base_kind", sorted(VIEWED_BASES))
@given(data=st.data())
def test_detach_in_place_on_a_view_raises(device, base_kind, data):
    base = VIEWED_BASES[base_kind](data, device)
    for source, view in VIEW_KINDS.items():
        with assert_raises(RuntimeError, match="(?i)view", clause="DETACH-5", what=f"`{source}`.detach_() with t {base_kind}"):
            view(base).detach_()


# ----------------------------------------------------------------------------- DETACH-6

DATA_WRITES = {
    "param.data.fill_(0.1)": lambda p, src: (p.data.fill_(0.1), torch.full_like(src, 0.1))[1],
    "param.data.copy_(src)": lambda p, src: (p.data.copy_(src), src)[1],
    "param.data = src": lambda p, src: (setattr(p, "data", src.clone()), src)[1],
}


@pytest.mark.spec("DETACH-6")
@pytest.mark.parametrize("write", sorted(DATA_WRITES))
@given(data=st.data())
def test_writing_through_data_initialises_a_parameter(device, write, data):
    shape = data.draw(shape_1d_2d, label="shape")
    param = torch.nn.Parameter(data.draw(tensors(shape=shape, device=device), label="initial values"))
    source = data.draw(tensors(shape=shape, dtype=param.dtype, device=device), label="new values")
    same = param
    expected = DATA_WRITES[write](param, source)
    assert_equal(param is same, True, clause="DETACH-6", what=f"`{write}` keeps the same parameter object")
    assert_close(param, expected, clause="DETACH-6", what=f"parameter values after `{write}`")
    assert_requires_grad(param, True, clause="DETACH-6", what=f"the parameter after `{write}`")
    assert_equal((param.is_leaf, param.grad_fn), (True, None), clause="DETACH-6", what=f"(is_leaf, grad_fn) after `{write}`")
