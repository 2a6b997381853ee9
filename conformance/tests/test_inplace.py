"""In-place operations.  Spec: specs/inplace.md."""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, assert_raises, assert_requires_grad, assert_succeeds, fail
from conformance.testlib.graphs import Graph, Step, graphs
from conformance.testlib.inplace_ops import DETERMINISTIC_FORMS, INPLACE_FORMS, OUT_FORMS, InPlaceForm
from conformance.testlib.grad_modes import NO_GRAD, SET_GRAD_DISABLED
from conformance.testlib.ops import ops_by_name
from conformance.testlib.saved_tensors import SAVES_INPUT, SAVES_OUTPUT, saved_tensor_modified
from conformance.testlib.strategies import REAL_DTYPES, dtypes, shapes, tensors

#: views of ``t`` that any shape has: name -> view
VIEWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "t[...]": lambda t: t[...],
    "t.view(-1)": lambda t: t.view(-1),
    "t.unsqueeze(0)": lambda t: t.unsqueeze(0),
}


def _leaf(data, device, *, dtype=dtypes(REAL_DTYPES), shape=shapes(), requires_grad=True) -> torch.Tensor:
    return data.draw(tensors(dtype=dtype, shape=shape, device=device, requires_grad=requires_grad), label="leaf")


# ----------------------------------------------------------------------------- INPLACE-1, -2

LEAF_TARGETS = {"w": lambda w: w, **{name.replace("t", "w", 1): view for name, view in VIEWS.items()}}


def _fresh_leaves(values: torch.Tensor, requires_grad: bool = True):
    """One new leaf per in-place form, all with the drawn values: (form source, form, leaf)."""
    for source, form in sorted(INPLACE_FORMS.items()):
        yield source, form, values.detach().clone().requires_grad_(requires_grad)


# Every form runs on every drawn example (a loop, not a parametrization: the
# per-example cost is the drawing, so this keeps the default run fast).


@pytest.mark.spec("INPLACE-1")
@given(data=st.data())
def test_in_place_op_on_a_leaf_requiring_grad_raises(device, data):
    values = _leaf(data, device)
    target_name = data.draw(st.sampled_from(sorted(LEAF_TARGETS)), label="written tensor")
    for source, form, w in _fresh_leaves(values):
        where = f"`{source}` in grad mode with t = {target_name}, w a leaf that requires grad"
        with assert_raises(RuntimeError, match="leaf Variable that requires grad is being used in an in-place operation", clause="INPLACE-1", what=where):
            form.apply(LEAF_TARGETS[target_name](w))
        assert_close(w, values, clause="INPLACE-1", what=f"w after the refused {where} (unchanged)", rtol=0, atol=0)


GRAD_OFF = {f"torch.no_grad() as a {form}": runner for form, runner in NO_GRAD.items()}
GRAD_OFF.update({f"torch.set_grad_enabled(False) as a {form}": runner for form, runner in SET_GRAD_DISABLED.items()})


@pytest.mark.spec("INPLACE-2")
@pytest.mark.parametrize("mode", sorted(GRAD_OFF))
@given(data=st.data())
def test_in_place_op_on_a_leaf_with_grad_mode_off_updates_it(device, mode, data):
    values = _leaf(data, device)
    for source, form, w in _fresh_leaves(values):
        storage = w.data_ptr()
        returned = GRAD_OFF[mode](lambda: form.apply(w))
        where = f"after `{source}` with t = w, a leaf that requires grad, under {mode}"
        if returned is not None and returned is not w:
            fail("INPLACE-2", f"{where}: the operation should return w itself, it returned another tensor")
        assert_equal(w.data_ptr(), storage, clause="INPLACE-2", what=f"{where}: w.data_ptr() (same storage)")
        if form.equivalent is not None:
            assert_close(w, form.equivalent(values), clause="INPLACE-2", what=f"{where}: w's values")
        assert_requires_grad(w, True, clause="INPLACE-2", what=f"{where}: w")
        assert_equal((w.is_leaf, w.grad_fn), (True, None), clause="INPLACE-2", what=f"{where}: (is_leaf, grad_fn) of w")


# ----------------------------------------------------------------------------- INPLACE-3


def _sgd_rebinding(params: list[torch.Tensor], lr: float) -> None:
    """The seed's `sgd` with `param = param - ...`: rebinds the loop variable only."""
    for param in params:
        param = param - lr * param.grad  # noqa: F841 - the point of the clause


@pytest.mark.spec("INPLACE-3")
@pytest.mark.parametrize("mode", ["grad mode", "torch.no_grad()"])
@given(data=st.data())
def test_rebinding_to_an_out_of_place_result_leaves_the_original_unchanged(device, mode, data):
    n = data.draw(st.integers(1, 3), label="number of parameters")
    params = [_leaf(data, device, shape=shapes(min_dims=1, min_side=1)) for _ in range(n)]
    lr = data.draw(st.floats(0.01, 1.0), label="lr")
    sum(((p * p).sum() for p in params), torch.zeros((), device=device)).backward()
    before = [p.detach().clone() for p in params]
    originals = list(params)

    def step():
        _sgd_rebinding(params, lr)
        param = params[0]
        return param - lr * param.grad

    new = NO_GRAD["context manager"](step) if mode == "torch.no_grad()" else step()
    for index, (param, original, old) in enumerate(zip(params, originals, before)):
        if param is not original:
            fail("INPLACE-3", f"params[{index}] should still be the same tensor object after the rebinding sgd")
        assert_close(param, old, clause="INPLACE-3", what=f"params[{index}] after `param = param - lr * param.grad` in {mode} (unchanged)", rtol=0, atol=0)
    if new is params[0]:
        fail("INPLACE-3", f"`param - lr * param.grad` in {mode} should be a new tensor, it is param itself")
    if mode == "grad mode":
        assert_equal((new.is_leaf, new.grad_fn is None), (False, False), clause="INPLACE-3", what="(is_leaf, grad_fn is None) of `param - lr * param.grad` in grad mode")
    else:
        assert_equal((new.is_leaf, new.requires_grad), (True, False), clause="INPLACE-3", what="(is_leaf, requires_grad) of `param - lr * param.grad` under torch.no_grad()")


# ----------------------------------------------------------------------------- INPLACE-4


def _writes(values: torch.Tensor, requires_grad: bool):
    """Every in-place form, then every ``out=`` form, each on a fresh copy of ``values``: (description, form, apply, tensor).

    ``out=`` forms are refused in grad mode on a tensor requiring grad, so there they run under ``torch.no_grad()``.
    """
    for source, form, t in _fresh_leaves(values, requires_grad=requires_grad):
        yield f"`{source}`", form, form.apply, t
    for source, form in sorted(OUT_FORMS.items()):
        t = values.detach().clone().requires_grad_(requires_grad)
        if requires_grad:
            yield f"`{source}` under torch.no_grad()", form, lambda t, form=form: NO_GRAD["context manager"](lambda: form.apply(t)), t
        else:
            yield f"`{source}`", form, form.apply, t


@pytest.mark.spec("INPLACE-4")
@given(data=st.data())
def test_in_place_ops_increment_the_version_shared_by_views(device, data):
    kind = data.draw(st.sampled_from(["a tensor that does not require grad", "a non-leaf that requires grad"]), label="t is")
    values = _leaf(data, device, requires_grad=False)
    view_name = data.draw(st.sampled_from(sorted(VIEWS)), label="view v of t")
    writer_name = data.draw(st.sampled_from(["t", "v"]), label="written tensor")
    for source, form, apply, t in _writes(values, requires_grad=kind != "a tensor that does not require grad"):
        if t.requires_grad:
            t = t * 1
        view = VIEWS[view_name](t)
        writer = t if writer_name == "t" else view
        before = writer._version
        apply(writer)
        where = f"after {source} on {writer_name} (t {kind}, v = {view_name})"
        if writer._version <= before:
            fail("INPLACE-4", f"{where}: {writer_name}._version should grow, it stayed {writer._version}")
        assert_equal(t._version, view._version, clause="INPLACE-4", what=f"{where}: t._version vs v._version (one shared counter)")
        if form.equivalent is not None:
            version = t._version
            form.equivalent(t)
            assert_equal(t._version, version, clause="INPLACE-4", what=f"t._version after the out-of-place equivalent of {source}")


# ----------------------------------------------------------------------------- INPLACE-5, -6

#: consumers that save a tensor for backward: name -> (consumer, which tensor gets modified: "input" or "output")
SAVING_CONSUMERS = {
    **{f"z = {source} with t = y, y modified": (consumer, "input") for source, consumer in SAVES_INPUT.items()},
    **{f"z = {source} with t = y, z modified": (consumer, "output") for source, consumer in SAVES_OUTPUT.items()},
}


@pytest.mark.spec("INPLACE-5")
@given(data=st.data())
def test_modifying_a_saved_tensor_makes_backward_raise(device, data):
    form = data.draw(st.sampled_from(sorted(INPLACE_FORMS)), label="in-place form")
    x = _leaf(data, device)
    through = data.draw(st.sampled_from(["directly", *sorted(VIEWS)]), label="written through")
    for consumer_name, (consumer, modified) in sorted(SAVING_CONSUMERS.items()):
        y = x * 1.5
        z = consumer(y)
        loss = z.sum()
        target = y if modified == "input" else z
        INPLACE_FORMS[form].apply(target if through == "directly" else VIEWS[through](target))
        with assert_raises(RuntimeError, match="modified by an inplace operation", clause="INPLACE-5", what=f"backward of z.sum() ({consumer_name} with `{form}`, written {through})"):
            loss.backward()


def _all_values_loss(graph: Graph, values: list[torch.Tensor]) -> torch.Tensor:
    """A loss every recorded step feeds, so backward runs every node of the program."""
    return sum((v.sum() for v in values[len(graph.leaves):] if v.requires_grad), torch.zeros((), dtype=values[0].dtype, device=values[0].device))


def _writable(value: torch.Tensor) -> bool:
    """A recorded result an in-place op may write to in grad mode (not a leaf, not a view of one, no overlapping elements)."""
    base = value._base
    overlapping = any(stride == 0 and size > 1 for stride, size in zip(value.stride(), value.shape))
    return not value.is_leaf and value.requires_grad and not (base is not None and base.is_leaf) and not overlapping


def _saved_tensor_modified(graph: Graph, index: int, form: InPlaceForm) -> bool:
    """Whether writing into t<index> of the program (run with a loss over every value) moves a saved tensor's version."""

    def forward():
        values = graph.run()
        return values, _all_values_loss(graph, values)

    return saved_tensor_modified(forward, lambda result: form.apply(result[0][index]))


def _write_targets(graph: Graph, form: InPlaceForm, touches_saved: bool) -> list[int]:
    return [i for i, v in enumerate(graph.run()) if _writable(v) and _saved_tensor_modified(graph, i, form) == touches_saved]


def _extended(graph: Graph, touches_saved: bool) -> Graph:
    """The program with two steps on t0 appended: u = torch.sin(t0), then a consumer of u that saves u (torch.sin) or nothing (u * 0.5)."""
    ops = ops_by_name()
    first, then = ops["sin"].forms[0], (ops["sin"] if touches_saved else ops["scale"]).forms[0]
    u = graph.n_values
    return Graph(graph.leaves, [*graph.steps, Step(first, (0,)), Step(then, (u,))])


def _draw_write(data, device, *, touches_saved: bool) -> tuple[Graph, int, InPlaceForm]:
    """A program, the index of a value an in-place op may write to in grad mode, and the form: the write touches what backward saved iff ``touches_saved``.

    A drawn program with no such value gets two steps appended that make one (``_extended``).
    """
    graph = data.draw(graphs(device=device, requires_grad=True), label="graph")
    form = DETERMINISTIC_FORMS[data.draw(st.sampled_from(sorted(DETERMINISTIC_FORMS)), label="in-place form")]
    candidates = _write_targets(graph, form, touches_saved)
    if not candidates:
        event("the drawn program had no value to write to: two steps appended")
        graph = _extended(graph, touches_saved)
        candidates = _write_targets(graph, form, touches_saved)
    return graph, data.draw(st.sampled_from(candidates), label="index of the written value"), form


@pytest.mark.spec("INPLACE-5")
@given(data=st.data())
def test_modifying_a_saved_value_of_a_random_program_makes_backward_raise(device, data):
    graph, index, form = _draw_write(data, device, touches_saved=True)
    values = graph.run()
    loss = _all_values_loss(graph, values)
    form.apply(values[index])
    what = f"backward after `{form.source}` with t = t{index}, which (or a view of which) was saved for backward\n{graph!r}\n"
    with assert_raises(RuntimeError, match="modified by an inplace operation", clause="INPLACE-5", what=what):
        torch.autograd.grad(loss, graph.leaves, allow_unused=True)


@pytest.mark.spec("INPLACE-6")
@given(data=st.data())
def test_modifying_a_value_backward_does_not_need_is_allowed(device, data):
    graph, index, form = _draw_write(data, device, touches_saved=False)
    values = graph.run()
    loss = _all_values_loss(graph, values)
    expected = torch.autograd.grad(loss, graph.leaves, retain_graph=True, allow_unused=True)
    form.apply(values[index])
    what = f"backward after `{form.source}` with t = t{index}, which no gradient formula saved\n{graph!r}\n"
    with assert_succeeds(clause="INPLACE-6", what=what):
        got = torch.autograd.grad(loss, graph.leaves, allow_unused=True)
    for leaf_index, (want, have) in enumerate(zip(expected, got)):
        if want is None:
            assert_equal(have, None, clause="INPLACE-6", what=f"{what}gradient of t{leaf_index}")
        else:
            assert_close(have, want, clause="INPLACE-6", what=f"{what}gradient of t{leaf_index} (as without the write)")


@pytest.mark.spec("INPLACE-6")
@given(data=st.data())
def test_modifying_an_unsaved_intermediate_is_allowed(device, data):
    form = data.draw(st.sampled_from(sorted(INPLACE_FORMS)), label="in-place form")
    x = _leaf(data, device)
    y = x * 2  # multiplying by a number saves neither x nor y
    loss = (y + 1).sum()
    INPLACE_FORMS[form].apply(y)
    with assert_succeeds(clause="INPLACE-6", what=f"backward of (y + 1).sum() after `{form}` with t = y = x * 2"):
        loss.backward()
    assert_close(x.grad, torch.full_like(x, 2.0), clause="INPLACE-6", what=f"x.grad of (y + 1).sum() after `{form}` on y = x * 2")


# ----------------------------------------------------------------------------- INPLACE-7, -8


def _gradient(loss: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad


@pytest.mark.spec("INPLACE-7")
@given(data=st.data())
def test_in_place_op_on_a_non_leaf_is_differentiated_like_its_out_of_place_form(device, data):
    values = _leaf(data, device, dtype=torch.float64)
    weights = data.draw(tensors(dtype=torch.float64, shape=values.shape, device=device), label="weights of the loss")
    for source, form, x in _fresh_leaves(values):
        if form.equivalent is None:
            continue
        y = x * 1.5
        form.apply(y)
        if y.is_leaf or not y.requires_grad:
            fail("INPLACE-7", f"y = x * 1.5 after `{source}` should still be a non-leaf that requires grad, got is_leaf={y.is_leaf}, requires_grad={y.requires_grad}")
        got = _gradient((y * weights).sum(), x)
        expected = _gradient((form.equivalent(x * 1.5) * weights).sum(), x)
        assert_close(got, expected, clause="INPLACE-7", what=f"x.grad through `{source}` on t = x * 1.5, vs its out-of-place form")


#: shapes with a first side of at least 1 (base[0] exists)
_shapes_with_a_first_element = st.tuples(st.integers(1, 4), shapes(max_dims=2)).map(lambda sides: (sides[0], *sides[1]))

#: views of a base that writes can go through: name -> (view, rebuild(base, new view values) out of place, the shapes it applies to)
VIEW_WRITES = {
    "base[...]": (lambda b: b[...], lambda b, new: new, shapes()),
    "base.view(-1)": (lambda b: b.view(-1), lambda b, new: new.reshape(b.shape), shapes()),
    "base.transpose(0, -1)": (lambda b: b.transpose(0, -1), lambda b, new: new.transpose(0, -1), shapes(min_dims=1)),
    "base[..., :1]": (lambda b: b[..., :1], lambda b, new: torch.cat([new, b[..., 1:]], dim=-1), shapes(min_dims=1)),
    "base[0]": (lambda b: b[0], lambda b, new: torch.cat([new.unsqueeze(0), b[1:]], dim=0), _shapes_with_a_first_element),
}


@pytest.mark.spec("INPLACE-8")
@pytest.mark.parametrize("view", sorted(VIEW_WRITES))
@given(data=st.data())
def test_in_place_op_through_a_view_is_differentiated_in_the_base(device, view, data):
    take, rebuild, view_shapes = VIEW_WRITES[view]
    x = _leaf(data, device, dtype=torch.float64, shape=view_shapes)
    weights = data.draw(tensors(dtype=torch.float64, shape=x.shape, device=device), label="weights of the loss")
    for source, form in sorted(DETERMINISTIC_FORMS.items()):
        base = x * 1.5
        form.apply(take(base))
        got = _gradient((base * weights).sum(), x)
        reference = x * 1.5
        rebuilt = rebuild(reference, form.equivalent(take(reference)))
        expected = _gradient((rebuilt * weights).sum(), x)
        assert_close(got, expected, clause="INPLACE-8", what=f"x.grad through base = x * 1.5 after `{source}` with t = {view}, vs the base rebuilt out of place")
