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


def _fresh_leaves(values: torch.Tensor, requires_grad: bool = True, sources=None):
    """One new leaf per in-place form (of ``sources``, default all), all with the drawn values: (form source, form, leaf)."""
    for source in sorted(INPLACE_FORMS if sources is None else sources):
        yield source, INPLACE_FORMS[source], values.detach().clone().requires_grad_(requires_grad)


#: in a compiled mode a drawn example runs at most this many entries of a table of forms: each is a program
#: dynamo compiles anew, so every form on every example would cost a compilation each; over the examples the
#: forms vary.  Eager runs every form on every example.
COMPILED_FORMS_PER_EXAMPLE = 3


def _forms_to_run(data, mode, names) -> list:
    """Every name in eager mode; in a compiled mode, a few drawn ones (:data:`COMPILED_FORMS_PER_EXAMPLE`)."""
    names = sorted(names)
    if not mode.compiled:
        return names
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=COMPILED_FORMS_PER_EXAMPLE, unique=True), label="forms run in this example (a compiled mode)")
    return sorted(chosen)


# Every form runs on every drawn example (a loop, not a parametrization: the
# per-example cost is the drawing, so this keeps the default run fast).


def _writer(form: InPlaceForm, target: Callable[[torch.Tensor], torch.Tensor]):
    """The program ``form.apply(target(w))`` of INPLACE-1: one in-place write on ``w`` or a view of it."""
    return lambda w: form.apply(target(w))


@pytest.mark.spec("INPLACE-1")
@given(data=st.data())
def test_in_place_op_on_a_leaf_requiring_grad_raises(device, mode, data):
    values = _leaf(data, device)
    target_name = data.draw(st.sampled_from(sorted(LEAF_TARGETS)), label="written tensor")
    for source, form, w in _fresh_leaves(values, sources=_forms_to_run(data, mode, INPLACE_FORMS)):
        where = f"`{source}` in grad mode with t = {target_name}, w a leaf that requires grad ({mode})"
        with assert_raises(RuntimeError, match="leaf Variable that requires grad is being used in an in-place operation", clause="INPLACE-1", what=where):
            mode.run(_writer(form, LEAF_TARGETS[target_name]), w)
        assert_close(w, values, clause="INPLACE-1", what=f"w after the refused {where} (unchanged)", rtol=0, atol=0)


def _apply_each(forms, tensors, *, call: bool = False) -> tuple:
    """Apply each form (each function, with ``call=True``) to its own tensor, in order; what each returned."""
    return tuple((form(t) if call else form.apply(t)) for form, t in zip(forms, tensors))


GRAD_OFF = {f"torch.no_grad() as a {form}": runner for form, runner in NO_GRAD.items()}
GRAD_OFF.update({f"torch.set_grad_enabled(False) as a {form}": runner for form, runner in SET_GRAD_DISABLED.items()})


@pytest.mark.spec("INPLACE-2")
@pytest.mark.parametrize("grad_off", sorted(GRAD_OFF))
@given(data=st.data())
def test_in_place_op_on_a_leaf_with_grad_mode_off_updates_it(device, mode, grad_off, data):
    values = _leaf(data, device)
    sources, forms, leaves = zip(*_fresh_leaves(values, sources=_forms_to_run(data, mode, INPLACE_FORMS)))
    storages = [w.data_ptr() for w in leaves]
    # one program writes every leaf, each with its own form, inside the grad-off form
    returns = mode.run(lambda *ws: GRAD_OFF[grad_off](lambda: _apply_each(forms, ws)), *leaves)
    for source, form, w, storage, returned in zip(sources, forms, leaves, storages, returns):
        where = f"after `{source}` with t = w, a leaf that requires grad, under {grad_off} ({mode})"
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


#: the grad modes INPLACE-3's update runs in: name -> runner
UPDATE_GRAD_MODES = {"grad mode": lambda fn: fn(), "torch.no_grad()": NO_GRAD["context manager"]}


@pytest.mark.spec("INPLACE-3")
@pytest.mark.parametrize("grad", sorted(UPDATE_GRAD_MODES))
@given(data=st.data())
def test_rebinding_to_an_out_of_place_result_leaves_the_original_unchanged(device, mode, grad, data):
    n = data.draw(st.integers(1, 3), label="number of parameters")
    params = [_leaf(data, device, shape=shapes(min_dims=1, min_side=1)) for _ in range(n)]
    lr = data.draw(st.floats(0.01, 1.0), label="lr")
    sum(((p * p).sum() for p in params), torch.zeros((), device=device)).backward()
    before = [p.detach().clone() for p in params]
    originals = list(params)

    def step(*params):
        _sgd_rebinding(list(params), lr)
        param = params[0]
        return param - lr * param.grad

    new = mode.run(lambda *params: UPDATE_GRAD_MODES[grad](lambda: step(*params)), *params)
    for index, (param, original, old) in enumerate(zip(params, originals, before)):
        if param is not original:
            fail("INPLACE-3", f"params[{index}] should still be the same tensor object after the rebinding sgd")
        assert_close(param, old, clause="INPLACE-3", what=f"params[{index}] after `param = param - lr * param.grad` in {grad} (unchanged) ({mode})", rtol=0, atol=0)
    if new is params[0]:
        fail("INPLACE-3", f"`param - lr * param.grad` in {grad} should be a new tensor, it is param itself ({mode})")
    if grad == "grad mode":
        assert_equal((new.is_leaf, new.grad_fn is None), (False, False), clause="INPLACE-3", what=f"(is_leaf, grad_fn is None) of `param - lr * param.grad` in grad mode ({mode})")
    else:
        assert_equal((new.is_leaf, new.requires_grad), (True, False), clause="INPLACE-3", what=f"(is_leaf, requires_grad) of `param - lr * param.grad` under torch.no_grad() ({mode})")


# ----------------------------------------------------------------------------- INPLACE-4


def _writes(values: torch.Tensor, requires_grad: bool, sources):
    """Every in-place form, then every ``out=`` form, each on a fresh copy of ``values``: (description, form, apply, tensor).

    ``out=`` forms are refused in grad mode on a tensor requiring grad, so there they run under ``torch.no_grad()``.
    """
    for source, form, t in _fresh_leaves(values, requires_grad=requires_grad, sources=[s for s in sources if s in INPLACE_FORMS]):
        yield f"`{source}`", form, form.apply, t
    for source, form in sorted((s, f) for s, f in OUT_FORMS.items() if s in sources):
        t = values.detach().clone().requires_grad_(requires_grad)
        if requires_grad:
            yield f"`{source}` under torch.no_grad()", form, lambda t, form=form: NO_GRAD["context manager"](lambda: form.apply(t)), t
        else:
            yield f"`{source}`", form, form.apply, t


@pytest.mark.spec("INPLACE-4")
@given(data=st.data())
def test_in_place_ops_increment_the_version_shared_by_views(device, mode, data):
    kind = data.draw(st.sampled_from(["a tensor that does not require grad", "a non-leaf that requires grad"]), label="t is")
    values = _leaf(data, device, requires_grad=False)
    view_name = data.draw(st.sampled_from(sorted(VIEWS)), label="view v of t")
    writer_name = data.draw(st.sampled_from(["t", "v"]), label="written tensor")
    cases = []  # (source, form, apply, t, view, writer), one fresh t per write
    sources = _forms_to_run(data, mode, [*INPLACE_FORMS, *OUT_FORMS])
    for source, form, apply, t in _writes(values, requires_grad=kind != "a tensor that does not require grad", sources=sources):
        if t.requires_grad:
            t = t * 1
        view = VIEWS[view_name](t)
        cases.append((source, form, apply, t, view, t if writer_name == "t" else view))
    befores = [case[-1]._version for case in cases]
    # one program makes every write, each on its own tensor (t or v, an input of the program)
    mode.run(lambda *writers: _apply_each([case[2] for case in cases], writers, call=True), *(case[-1] for case in cases))
    for (source, form, _, t, view, writer), before in zip(cases, befores):
        where = f"after {source} on {writer_name} (t {kind}, v = {view_name}) ({mode})"
        if writer._version <= before:
            fail("INPLACE-4", f"{where}: {writer_name}._version should grow, it stayed {writer._version}")
        assert_equal(t._version, view._version, clause="INPLACE-4", what=f"{where}: t._version vs v._version (one shared counter)")
    out_of_place = [(source, form, t) for source, form, _, t, _, _ in cases if form.equivalent is not None]
    versions = [t._version for _, _, t in out_of_place]
    mode.run(lambda *ts: tuple(form.equivalent(t) for (_, form, _), t in zip(out_of_place, ts)), *(t for _, _, t in out_of_place))
    for (source, _, t), version in zip(out_of_place, versions):
        assert_equal(t._version, version, clause="INPLACE-4", what=f"t._version after the out-of-place equivalent of {source} ({mode})")


# ----------------------------------------------------------------------------- INPLACE-5, -6

#: consumers that save a tensor for backward: name -> (consumer, which tensor gets modified: "input" or "output")
SAVING_CONSUMERS = {
    **{f"z = {source} with t = y, y modified": (consumer, "input") for source, consumer in SAVES_INPUT.items()},
    **{f"z = {source} with t = y, z modified": (consumer, "output") for source, consumer in SAVES_OUTPUT.items()},
}


#: where the in-place write of INPLACE-5 and INPLACE-6 is made: inside the program that computes the loss (compiled
#: with it in a compiled mode), or by its caller, on the program's outputs
WRITERS = ("inside the program", "by the caller")


def _saving_program(consumer, modified: str, write: Callable[[torch.Tensor], object], writer: str):
    """``y = x * 1.5``, ``z = consumer(y)``, ``loss = z.sum()``, then (inside the program) the write into y or z;
    returns ``(loss, the tensor to write)``."""

    def program(x):
        y = x * 1.5
        z = consumer(y)
        loss = z.sum()
        target = y if modified == "input" else z
        if writer == "inside the program":
            write(target)
        return loss, target

    return program


@pytest.mark.spec("INPLACE-5")
@pytest.mark.parametrize("writer", WRITERS)
@given(data=st.data())
def test_modifying_a_saved_tensor_makes_backward_raise(device, mode, writer, data):
    form = data.draw(st.sampled_from(sorted(INPLACE_FORMS)), label="in-place form")
    x = _leaf(data, device)
    through = data.draw(st.sampled_from(["directly", *sorted(VIEWS)]), label="written through")

    def write(target):
        INPLACE_FORMS[form].apply(target if through == "directly" else VIEWS[through](target))

    for consumer_name in _forms_to_run(data, mode, SAVING_CONSUMERS):
        consumer, modified = SAVING_CONSUMERS[consumer_name]
        where = f"{consumer_name} with `{form}`, written {through} {writer} ({mode})"
        with assert_succeeds(clause="INPLACE-5", what=f"the forward of z.sum() ({where}; the error belongs to backward)"):
            loss, target = mode.run(_saving_program(consumer, modified, write, writer), x)
        if writer == "by the caller":
            write(target)
        with assert_raises(RuntimeError, match="modified by an inplace operation", clause="INPLACE-5", what=f"backward of z.sum() ({where})"):
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


def _draw_write(data, device, *, touches_saved: bool, mode) -> tuple[Graph, int, InPlaceForm]:
    """A program, the index of a value an in-place op may write to in grad mode, and the form: the write touches what backward saved iff ``touches_saved``.

    A drawn program with no such value gets two steps appended that make one (``_extended``).
    """
    graph = data.draw(graphs(device=device, requires_grad=True, mode=mode), label="graph")
    form = DETERMINISTIC_FORMS[data.draw(st.sampled_from(sorted(DETERMINISTIC_FORMS)), label="in-place form")]
    candidates = _write_targets(graph, form, touches_saved)
    if not candidates:
        event("the drawn program had no value to write to: two steps appended")
        graph = _extended(graph, touches_saved)
        candidates = _write_targets(graph, form, touches_saved)
    return graph, data.draw(st.sampled_from(candidates), label="index of the written value"), form


def _program_with_a_write(graph: Graph, index: int, form: InPlaceForm, writer: str):
    """The graph's program with a loss over every value; inside the program (``writer``), the write into t<index>.
    Returns ``(loss, every value)``."""

    def program(*leaves):
        values = [*leaves, *graph.program(*leaves)]
        loss = _all_values_loss(graph, values)
        if writer == "inside the program":
            form.apply(values[index])
        return loss, tuple(values[len(leaves):])

    return program


def _run_and_write(graph: Graph, index: int, form: InPlaceForm, writer: str, mode, *, clause: str, what: str) -> torch.Tensor:
    """Run the program (through ``mode``) and make the write where ``writer`` says; the loss."""
    __tracebackhide__ = True
    with assert_succeeds(clause=clause, what=f"the forward of {what}(the error, if any, belongs to backward)"):
        loss, values = mode.run(_program_with_a_write(graph, index, form, writer), *graph.leaves)
    if writer == "by the caller":
        form.apply(values[index - len(graph.leaves)])
    return loss


@pytest.mark.spec("INPLACE-5")
@pytest.mark.parametrize("writer", WRITERS)
@given(data=st.data())
def test_modifying_a_saved_value_of_a_random_program_makes_backward_raise(device, mode, writer, data):
    graph, index, form = _draw_write(data, device, touches_saved=True, mode=mode)
    what = f"backward after `{form.source}` with t = t{index} {writer}, which (or a view of which) was saved for backward ({mode})\n{graph!r}\n"
    loss = _run_and_write(graph, index, form, writer, mode, clause="INPLACE-5", what=what)
    with assert_raises(RuntimeError, match="modified by an inplace operation", clause="INPLACE-5", what=what):
        torch.autograd.grad(loss, graph.leaves, allow_unused=True)


@pytest.mark.spec("INPLACE-6")
@pytest.mark.parametrize("writer", WRITERS)
@given(data=st.data())
def test_modifying_a_value_backward_does_not_need_is_allowed(device, mode, writer, data):
    graph, index, form = _draw_write(data, device, touches_saved=False, mode=mode)
    # the gradients without the write (op by op)
    expected = torch.autograd.grad(_all_values_loss(graph, graph.run()), graph.leaves, allow_unused=True)
    what = f"backward after `{form.source}` with t = t{index} {writer}, which no gradient formula saved ({mode})\n{graph!r}\n"
    loss = _run_and_write(graph, index, form, writer, mode, clause="INPLACE-6", what=what)
    with assert_succeeds(clause="INPLACE-6", what=what):
        got = torch.autograd.grad(loss, graph.leaves, allow_unused=True)
    for leaf_index, (want, have) in enumerate(zip(expected, got)):
        if want is None:
            assert_equal(have, None, clause="INPLACE-6", what=f"{what}gradient of t{leaf_index}")
        else:
            assert_close(have, want, clause="INPLACE-6", what=f"{what}gradient of t{leaf_index} (as without the write)")


def _unsaved_intermediate_program(form: InPlaceForm, writer: str):
    """``y = x * 2``, ``loss = (y + 1).sum()``, then (inside the program) the write into y; returns ``(loss, y)``."""

    def program(x):
        y = x * 2  # multiplying by a number saves neither x nor y
        loss = (y + 1).sum()
        if writer == "inside the program":
            form.apply(y)
        return loss, y

    return program


@pytest.mark.spec("INPLACE-6")
@pytest.mark.parametrize("writer", WRITERS)
@given(data=st.data())
def test_modifying_an_unsaved_intermediate_is_allowed(device, mode, writer, data):
    form = data.draw(st.sampled_from(sorted(INPLACE_FORMS)), label="in-place form")
    x = _leaf(data, device)
    loss, y = mode.run(_unsaved_intermediate_program(INPLACE_FORMS[form], writer), x)
    if writer == "by the caller":
        INPLACE_FORMS[form].apply(y)
    with assert_succeeds(clause="INPLACE-6", what=f"backward of (y + 1).sum() after `{form}` with t = y = x * 2 {writer} ({mode})"):
        loss.backward()
    assert_close(x.grad, torch.full_like(x, 2.0), clause="INPLACE-6", what=f"x.grad of (y + 1).sum() after `{form}` on y = x * 2 {writer} ({mode})")


# ----------------------------------------------------------------------------- INPLACE-7, -8


def _gradients(loss: torch.Tensor, leaves) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [torch.zeros_like(x) if grad is None else grad for x, grad in zip(leaves, grads)]


def _weighted_sum(tensors, weights) -> torch.Tensor:
    return sum(((t * weights).sum() for t in tensors), torch.zeros((), dtype=weights.dtype, device=weights.device))


def _written_products(forms, take=lambda t: t):
    """The program of INPLACE-7 and INPLACE-8: for each form and its own leaf x, ``t = x * 1.5`` and the form written
    into ``take(t)``; returns every t."""

    def program(*leaves):
        written = []
        for form, x in zip(forms, leaves):
            t = x * 1.5
            form.apply(take(t))
            written.append(t)
        return tuple(written)

    return program


@pytest.mark.spec("INPLACE-7")
@given(data=st.data())
def test_in_place_op_on_a_non_leaf_is_differentiated_like_its_out_of_place_form(device, mode, data):
    values = _leaf(data, device, dtype=torch.float64)
    weights = data.draw(tensors(dtype=torch.float64, shape=values.shape, device=device), label="weights of the loss")
    sources, forms, leaves = zip(*_fresh_leaves(values, sources=_forms_to_run(data, mode, DETERMINISTIC_FORMS)))
    ys = mode.run(_written_products(forms), *leaves)
    for source, y in zip(sources, ys):
        if y.is_leaf or not y.requires_grad:
            fail("INPLACE-7", f"y = x * 1.5 after `{source}` should still be a non-leaf that requires grad, got is_leaf={y.is_leaf}, requires_grad={y.requires_grad} ({mode})")
    # one backward over every y: each leaf x feeds its own y only, so its gradient is that of (y * weights).sum()
    got = _gradients(_weighted_sum(ys, weights), leaves)
    expected = _gradients(_weighted_sum([form.equivalent(x * 1.5) for form, x in zip(forms, leaves)], weights), leaves)
    for source, have, want in zip(sources, got, expected):
        assert_close(have, want, clause="INPLACE-7", what=f"x.grad through `{source}` on t = x * 1.5, vs its out-of-place form ({mode})")


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
def test_in_place_op_through_a_view_is_differentiated_in_the_base(device, mode, view, data):
    take, rebuild, view_shapes = VIEW_WRITES[view]
    x = _leaf(data, device, dtype=torch.float64, shape=view_shapes)
    weights = data.draw(tensors(dtype=torch.float64, shape=x.shape, device=device), label="weights of the loss")
    sources = _forms_to_run(data, mode, DETERMINISTIC_FORMS)
    forms = [DETERMINISTIC_FORMS[source] for source in sources]
    leaves = [x.detach().clone().requires_grad_() for _ in forms]  # one leaf per form, all with x's values
    bases = mode.run(_written_products(forms, take), *leaves)
    # one backward over every base: each leaf feeds its own base only
    got = _gradients(_weighted_sum(bases, weights), leaves)
    references = [x * 1.5 for x in leaves]
    rebuilt = [rebuild(reference, form.equivalent(take(reference))) for form, reference in zip(forms, references)]
    expected = _gradients(_weighted_sum(rebuilt, weights), leaves)
    for source, have, want in zip(sources, got, expected):
        assert_close(have, want, clause="INPLACE-8", what=f"x.grad through base = x * 1.5 after `{source}` with t = {view}, vs the base rebuilt out of place ({mode})")
