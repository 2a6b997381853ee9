"""Grad mode: no_grad, enable_grad, set_grad_enabled, inference_mode.  Spec: specs/grad_mode.md."""

from __future__ import annotations

import threading

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, assert_grad_mode, assert_raises, assert_requires_grad, fail
from conformance.testlib.factories import REQUIRES_GRAD_FACTORIES, create_like
from conformance.testlib.graphs import aliases_an_operand, graphs
from conformance.testlib.grad_modes import (
    ENABLE_GRAD,
    INFERENCE_MODE,
    INFERENCE_MODE_OFF,
    NO_GRAD,
    NO_GRAD_DECORATORS,
    SET_GRAD_DISABLED,
    set_grad_disabled_as_decorator,
)
from conformance.testlib.strategies import REAL_DTYPES, dtypes, tensors, vacuous


def _is_alias(step) -> bool:
    """A view of one of the op's inputs, or one returned as is: shares its autograd metadata."""
    return aliases_an_operand(step.output, step.inputs)


def _returns_an_input(step) -> bool:
    """The op returned one of its inputs as is: nothing to record (a view, by contrast, is recorded in grad mode)."""
    return any(step.output is t for t in step.inputs)


def _view_of_normal_tensor(step) -> bool:
    """An alias (see :func:`_is_alias`) of operands none of which is an inference tensor: GRADMODE-14 exempts it."""
    return _is_alias(step) and not any(t.is_inference() for t in step.inputs)


class _Leave(Exception):
    """Raised to leave a mode by an exception."""


def _raise_leave():
    raise _Leave


EXIT_BY = pytest.mark.parametrize("exit_by", ["normal exit", "exception"])


def _enter_and_leave(run, exit_by: str) -> None:
    """Enter a mode through ``run`` and leave it normally or by an exception."""
    try:
        run(_raise_leave if exit_by == "exception" else (lambda: None))
    except _Leave:
        pass


# ----------------------------------------------------------------------------- GRADMODE-1, -2, -3


@pytest.mark.spec("GRADMODE-1")
@pytest.mark.parametrize("form", sorted(NO_GRAD))
@given(data=st.data())
def test_no_grad_records_nothing(device, form, data):
    graph = data.draw(graphs(device=device, recording=True), label="graph")  # grad mode would record it
    for step in NO_GRAD[form](lambda: list(graph.trace())):
        if step.output.grad_fn is not None:
            fail("GRADMODE-1", f"inside no_grad ({form}), `{step.source}` was recorded: grad_fn={step.output.grad_fn}")


@pytest.mark.spec("GRADMODE-2")
@pytest.mark.parametrize("form", sorted(NO_GRAD))
@given(data=st.data())
def test_no_grad_results_do_not_require_grad(device, form, data):
    graph = data.draw(graphs(device=device, requires_grad=True, computes=True), label="graph")
    new_results = [step for step in NO_GRAD[form](lambda: list(graph.trace())) if not _is_alias(step)]
    if not new_results:
        vacuous("every step was a view: the clause says nothing about them")
        return
    for step in new_results:
        assert_requires_grad(step.output, False, clause="GRADMODE-2", what=f"inside no_grad ({form}), `{step.source}`")


@pytest.mark.spec("GRADMODE-3")
@pytest.mark.parametrize("form", sorted(NO_GRAD))
@given(data=st.data())
def test_view_under_no_grad_shares_requires_grad(device, form, data):
    base = data.draw(tensors(shape=st.tuples(st.integers(1, 4), st.integers(1, 4)), device=device, requires_grad=True), label="base")
    views = {
        "x.transpose(0, 1)": lambda: base.transpose(0, 1),
        "x.view(-1)": lambda: base.view(-1),
        "x[0]": lambda: base[0],
        "x.unsqueeze(0)": lambda: base.unsqueeze(0),
        "x.expand(2, -1, -1)": lambda: base.expand(2, -1, -1),
    }
    for source, make in views.items():
        view = NO_GRAD[form](make)
        what = f"the view `{source}` of a tensor requiring grad, taken inside no_grad ({form})"
        assert_requires_grad(view, True, clause="GRADMODE-3", what=what)
        assert_equal(view.grad_fn, None, clause="GRADMODE-3", what=f"grad_fn of {what}")


# ----------------------------------------------------------------------------- GRADMODE-4, -5


@st.composite
def _caller_modes(draw) -> list[bool]:
    """The caller's grad mode at each resumption of a generator: changing at least once."""
    modes = draw(st.lists(st.booleans(), min_size=2, max_size=5), label="caller grad mode at each resumption")
    changed = draw(st.integers(1, len(modes) - 1), label="a resumption where the caller changed mode")
    modes[changed] = not modes[changed - 1]
    return modes


@pytest.mark.spec("GRADMODE-4")
@pytest.mark.parametrize("decorator", sorted(NO_GRAD_DECORATORS))
@given(caller_modes=_caller_modes())
def test_no_grad_decorated_generator(decorator, caller_modes):
    observed = []

    @NO_GRAD_DECORATORS[decorator]()
    def generator():
        while True:
            observed.append(torch.is_grad_enabled())
            yield

    resumptions = generator()
    for index, mode in enumerate(caller_modes):
        with torch.set_grad_enabled(mode):
            next(resumptions)
            where = f"after resumption {index} of a {decorator} generator by a caller in grad modes {caller_modes}"
            assert_grad_mode(mode, clause="GRADMODE-4", where=where)
    resumptions.close()
    assert_equal(observed, [False] * len(caller_modes), clause="GRADMODE-4", what=f"grad mode seen inside the {decorator} generator body at each resumption")


@pytest.mark.spec("GRADMODE-5")
@EXIT_BY
@pytest.mark.parametrize("form", sorted(NO_GRAD))
@pytest.mark.parametrize("outer_mode", [True, False])
def test_leaving_no_grad_restores_previous_mode(form, exit_by, outer_mode):
    with torch.set_grad_enabled(outer_mode):
        _enter_and_leave(NO_GRAD[form], exit_by)
        assert_grad_mode(outer_mode, clause="GRADMODE-5", where=f"after leaving no_grad ({form}, by {exit_by}) entered with grad mode {outer_mode}")


@pytest.mark.spec("GRADMODE-5")
@given(depth=st.integers(1, 5), data=st.data())
def test_nested_no_grad_and_enable_grad_restore_each_level(depth, data):
    """A random nest of no_grad/enable_grad blocks: every level restores the mode of the level outside it."""
    kinds = data.draw(st.lists(st.sampled_from(["no_grad", "enable_grad"]), min_size=depth, max_size=depth), label="nesting")

    def enter(level: int, outer: bool) -> None:
        if level == len(kinds):
            return
        kind = kinds[level]
        with (torch.no_grad() if kind == "no_grad" else torch.enable_grad()):
            assert_grad_mode(kind == "enable_grad", clause="GRADMODE-5", where=f"inside {'/'.join(kinds[: level + 1])}")
            enter(level + 1, kind == "enable_grad")
        assert_grad_mode(outer, clause="GRADMODE-5", where=f"after leaving level {level} ({kind}) of {'/'.join(kinds)}")

    enter(0, True)


# ----------------------------------------------------------------------------- GRADMODE-6


@pytest.mark.spec("GRADMODE-6")
@pytest.mark.parametrize("form", sorted(ENABLE_GRAD))
@given(data=st.data())
def test_enable_grad_inside_no_grad_records(device, form, data):
    graph = data.draw(graphs(device=device, requires_grad=True), label="graph")

    def body():
        steps = ENABLE_GRAD[form](lambda: (torch.is_grad_enabled(), list(graph.trace())))
        assert_grad_mode(False, clause="GRADMODE-6", where=f"inside no_grad after leaving enable_grad ({form})")
        return steps

    enabled_inside, steps = NO_GRAD["context manager"](body)
    assert_equal(enabled_inside, True, clause="GRADMODE-6", what=f"torch.is_grad_enabled() inside enable_grad ({form}) within no_grad")
    for step in steps:
        if not _returns_an_input(step) and step.output.grad_fn is None:
            fail("GRADMODE-6", f"inside enable_grad ({form}) within no_grad, `{step.source}` was not recorded")


# ----------------------------------------------------------------------------- GRADMODE-7, -8, -9


@pytest.mark.spec("GRADMODE-7")
@given(data=st.data())
def test_set_grad_enabled_as_a_function(device, data):
    x = data.draw(tensors(device=device, requires_grad=True), label="x")
    try:
        torch.set_grad_enabled(False)
        assert_grad_mode(False, clause="GRADMODE-7", where="after torch.set_grad_enabled(False)")
        disabled = x * 2
        torch.set_grad_enabled(True)
        assert_grad_mode(True, clause="GRADMODE-7", where="after torch.set_grad_enabled(True)")
        enabled = x * 2
    finally:
        torch.set_grad_enabled(True)
    assert_requires_grad(disabled, False, clause="GRADMODE-7", what="x * 2 computed after torch.set_grad_enabled(False)")
    assert_requires_grad(enabled, True, clause="GRADMODE-7", what="x * 2 computed after torch.set_grad_enabled(True)")


@pytest.mark.spec("GRADMODE-8")
@EXIT_BY
@pytest.mark.parametrize("outer_mode", [True, False])
@pytest.mark.parametrize("mode", [True, False])
def test_set_grad_enabled_as_a_context_manager(device, mode, outer_mode, exit_by):
    x = torch.ones(2, device=device, requires_grad=True)
    results = []

    def body():
        assert_grad_mode(mode, clause="GRADMODE-8", where=f"inside set_grad_enabled({mode})")
        results.append(x * 2)
        if exit_by == "exception":
            raise _Leave

    with torch.set_grad_enabled(outer_mode):
        try:
            with torch.set_grad_enabled(mode):
                body()
        except _Leave:
            pass
        assert_grad_mode(outer_mode, clause="GRADMODE-8", where=f"after leaving set_grad_enabled({mode}) by {exit_by}, entered from mode {outer_mode}")
    assert_requires_grad(results[0], mode, clause="GRADMODE-8", what=f"x * 2 inside set_grad_enabled({mode})")


#: (mode name, its forms, grad mode inside it when entered from grad mode)
_GRAD_OFF_AND_ON = [("no_grad", NO_GRAD, False), ("set_grad_enabled(False)", SET_GRAD_DISABLED, False), ("inference_mode", INFERENCE_MODE, False), ("inference_mode(False)", INFERENCE_MODE_OFF, True), ("enable_grad", ENABLE_GRAD, True)]


@pytest.mark.spec("GRADMODE-9")
def test_is_grad_enabled_reports_the_current_mode():
    assert_grad_mode(True, clause="GRADMODE-9", where="by default")
    for name, forms, inside in _GRAD_OFF_AND_ON:
        for form, run in forms.items():
            run(lambda: assert_grad_mode(inside, clause="GRADMODE-9", where=f"inside {name} ({form})"))
            assert_grad_mode(True, clause="GRADMODE-9", where=f"by default, once {name} ({form}) was left")
    for form, run in ENABLE_GRAD.items():
        NO_GRAD["context manager"](
            lambda: run(lambda: assert_grad_mode(True, clause="GRADMODE-9", where=f"inside enable_grad ({form}) within no_grad"))
        )


@pytest.mark.spec("GRADMODE-9")
def test_set_grad_enabled_as_a_decorator_sets_the_mode_only_inside():
    """Decorating with ``@torch.set_grad_enabled(False)`` changes nothing until the function runs (pytorch/pytorch#113298)."""
    set_grad_disabled_as_decorator(lambda: assert_grad_mode(False, clause="GRADMODE-9", where="inside @torch.set_grad_enabled(False)"))
    assert_grad_mode(True, clause="GRADMODE-9", where="by default, after a function decorated with @torch.set_grad_enabled(False) ran")


# ----------------------------------------------------------------------------- GRADMODE-10


def _in_thread(fn):
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.mark.spec("GRADMODE-10")
@pytest.mark.parametrize("form", sorted(NO_GRAD))
def test_grad_mode_is_thread_local(device, form):
    x = torch.ones(3, device=device, requires_grad=True)
    seen_in_thread = NO_GRAD[form](lambda: _in_thread(lambda: (torch.is_grad_enabled(), (x * 2).requires_grad)))
    assert_equal(seen_in_thread, (True, True), clause="GRADMODE-10", what=f"(grad mode, (x * 2).requires_grad) in a thread started inside no_grad ({form})")

    def disable_in_thread():
        torch.set_grad_enabled(False)  # the thread ends with grad disabled; it must not leak to us
        return torch.is_grad_enabled()

    assert_equal(_in_thread(disable_in_thread), False, clause="GRADMODE-10", what="grad mode in the thread after set_grad_enabled(False)")
    assert_grad_mode(True, clause="GRADMODE-10", where="in the main thread after another thread called set_grad_enabled(False)")


# ----------------------------------------------------------------------------- GRADMODE-11, -12, -13


@pytest.mark.spec("GRADMODE-11")
@pytest.mark.parametrize("form", sorted(NO_GRAD))
@pytest.mark.parametrize("factory", REQUIRES_GRAD_FACTORIES)
@given(data=st.data())
def test_factory_requires_grad_true_under_no_grad(device, form, factory, data):
    like = data.draw(tensors(dtype=dtypes(REAL_DTYPES), device=device, requires_grad=st.booleans()), label="tensor to make one like")
    made = NO_GRAD[form](lambda: create_like(factory, like, requires_grad=True))
    assert_requires_grad(made, True, clause="GRADMODE-11", what=f"{factory}(..., requires_grad=True) inside no_grad ({form})")


@pytest.mark.spec("GRADMODE-12")
@pytest.mark.parametrize("form", sorted(NO_GRAD))
@given(data=st.data())
def test_result_computed_under_no_grad_stops_gradient_flow(device, form, data):
    graph = data.draw(graphs(device=device, requires_grad=True, computes=True), label="graph")
    steps = NO_GRAD[form](lambda: list(graph.trace()))
    step = next((s for s in reversed(steps) if not _is_alias(s)), None)
    if step is None:
        vacuous("every step was a view: nothing new was computed")
        return
    detached = step.output
    assert_requires_grad(detached, False, clause="GRADMODE-12", what=f"`{step.source}` computed inside no_grad ({form}), after the block")
    assert_equal(detached.is_leaf, True, clause="GRADMODE-12", what="is_leaf of a result computed inside no_grad")
    weight = torch.ones_like(detached, requires_grad=True)
    (detached * weight).sum().backward()
    for index, leaf in enumerate(graph.leaves):
        if leaf.grad is not None:
            fail("GRADMODE-12", f"leaf t{index} received a gradient through a value computed inside no_grad ({form}):\n{graph!r}")
    if weight.grad is None:
        fail("GRADMODE-12", "the tensor combined with the no_grad result after the block received no gradient")


@pytest.mark.spec("GRADMODE-13")
@pytest.mark.parametrize("update", ["param -= lr * param.grad", "param.sub_(lr * param.grad)", "param.add_(param.grad, alpha=-lr)"])
@given(data=st.data())
def test_in_place_parameter_update_under_no_grad(device, update, data):
    param = data.draw(tensors(device=device, requires_grad=True, dtype=torch.float64), label="param")
    lr = data.draw(st.floats(0.01, 1.0), label="lr")
    (param * param).sum().backward()
    expected = param.detach() - lr * param.grad
    same = param
    with torch.no_grad():
        if update.startswith("param -="):
            param -= lr * param.grad
        elif update.startswith("param.sub_"):
            param.sub_(lr * param.grad)
        else:
            param.add_(param.grad, alpha=-lr)
    assert_equal(param is same, True, clause="GRADMODE-13", what=f"`{update}` under no_grad updates the same tensor object")
    assert_close(param, expected, clause="GRADMODE-13", what=f"values after `{update}` under no_grad")
    assert_requires_grad(param, True, clause="GRADMODE-13", what=f"param after `{update}` under no_grad")
    assert_equal((param.is_leaf, param.grad_fn), (True, None), clause="GRADMODE-13", what=f"(is_leaf, grad_fn) of param after `{update}`")


# ----------------------------------------------------------------------------- GRADMODE-14 .. 18


@pytest.mark.spec("GRADMODE-14")
@pytest.mark.parametrize("form", sorted(INFERENCE_MODE))
@given(data=st.data())
def test_inference_mode_makes_inference_tensors(device, form, data):
    graph = data.draw(graphs(device=device), label="graph")

    def body():
        assert_equal(torch.is_inference_mode_enabled(), True, clause="GRADMODE-14", what=f"torch.is_inference_mode_enabled() inside inference_mode ({form})")
        assert_grad_mode(False, clause="GRADMODE-14", where=f"inside inference_mode ({form})")
        return list(graph.trace())

    for step in INFERENCE_MODE[form](body):
        if _view_of_normal_tensor(step):
            continue  # a view of a normal tensor stays a normal tensor; a view of an inference tensor is one
        what = f"`{step.source}` computed inside inference_mode ({form})"
        assert_equal(step.output.is_inference(), True, clause="GRADMODE-14", what=f"is_inference() of {what}")
        assert_requires_grad(step.output, False, clause="GRADMODE-14", what=what)


@pytest.mark.spec("GRADMODE-15")
@given(data=st.data())
def test_inference_tensors_cannot_be_saved_for_backward(device, data):
    shape = data.draw(st.tuples(st.integers(1, 4), st.integers(1, 4)), label="shape")
    with torch.inference_mode():
        inference = data.draw(tensors(shape=shape, device=device, dtype=torch.float32), label="inference tensor") * 1
    weight = torch.ones(shape, device=device, requires_grad=True)
    uses = {"inference * weight": lambda: inference * weight, "torch.mul(weight, inference)": lambda: torch.mul(weight, inference), "inference @ weight.mT": lambda: inference @ weight.mT}
    for source, use in uses.items():
        with assert_raises(RuntimeError, match="(?i)inference tensors cannot be saved for backward", clause="GRADMODE-15", what=f"`{source}` outside inference mode"):
            use()


@pytest.mark.spec("GRADMODE-16")
@pytest.mark.parametrize("update", ["add_(1)", "mul_(2)", "zero_()", "fill_(3)", "+= 1", "copy_"])
def test_inference_tensors_are_immutable_outside_inference_mode(device, update):
    with torch.inference_mode():
        inference = torch.ones(3, device=device)
    apply = {
        "add_(1)": lambda t: t.add_(1),
        "mul_(2)": lambda t: t.mul_(2),
        "zero_()": lambda t: t.zero_(),
        "fill_(3)": lambda t: t.fill_(3),
        "+= 1": lambda t: t.__iadd__(1),
        "copy_": lambda t: t.copy_(torch.zeros(3, device=device)),
    }[update]
    with assert_raises(RuntimeError, match="(?i)inplace update to inference tensor", clause="GRADMODE-16", what=f"inference_tensor.{update} outside inference mode"):
        apply(inference)


@pytest.mark.spec("GRADMODE-17")
@pytest.mark.parametrize("form", sorted(INFERENCE_MODE_OFF))
@given(data=st.data())
def test_inference_mode_false_keeps_autograd_on(device, form, data):
    graph = data.draw(graphs(device=device, requires_grad=True), label="graph")

    def body():
        assert_equal(torch.is_inference_mode_enabled(), False, clause="GRADMODE-17", what=f"torch.is_inference_mode_enabled() inside {form}")
        assert_grad_mode(True, clause="GRADMODE-17", where=f"inside {form}")
        return list(graph.trace())

    for step in INFERENCE_MODE_OFF[form](body):
        assert_equal(step.output.is_inference(), False, clause="GRADMODE-17", what=f"is_inference() of `{step.source}` inside {form}")
        if not _returns_an_input(step) and step.output.grad_fn is None:
            fail("GRADMODE-17", f"`{step.source}` inside {form} was not recorded")


@pytest.mark.spec("GRADMODE-18")
@EXIT_BY
@pytest.mark.parametrize("form", sorted(INFERENCE_MODE))
@pytest.mark.parametrize("outer_mode", [True, False])
def test_leaving_inference_mode_restores_previous_modes(form, exit_by, outer_mode):
    with torch.set_grad_enabled(outer_mode):
        _enter_and_leave(INFERENCE_MODE[form], exit_by)
        where = f"after leaving inference_mode ({form}, by {exit_by}) entered with grad mode {outer_mode}"
        assert_grad_mode(outer_mode, clause="GRADMODE-18", where=where)
        assert_equal(torch.is_inference_mode_enabled(), False, clause="GRADMODE-18", what=f"torch.is_inference_mode_enabled() {where}")
