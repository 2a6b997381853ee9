"""Grad mode: no_grad, enable_grad, set_grad_enabled, inference_mode.  Spec: specs/grad_mode.md.

Every test runs its user program through the ``mode`` fixture.  In a compiled mode a clause about entering a
grad mode is checked with the mode entered inside the compiled function and around it (the compiled function
called under the mode: ``grad_modes.placements``); harness code (draws, assertions, threads) stays outside the
compiled functions, which return what the clause speaks of (tensors, and the grad mode they saw).
"""

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
    AROUND,
    ENABLE_GRAD,
    INFERENCE_MODE,
    INFERENCE_MODE_OFF,
    INSIDE,
    NO_GRAD,
    NO_GRAD_DECORATORS,
    SET_GRAD_DISABLED,
    placement_note,
    placements,
    run_in_grad_mode,
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


def _grad_mode_and_a_product(x):
    """What code sees of the grad mode in force: ``torch.is_grad_enabled()``, and ``x * 2`` (recorded or not)."""
    return torch.is_grad_enabled(), x * 2


def _leave_then_observe(run, exit_by: str, x):
    """Enter a mode through ``run``, leave it (normally or by an exception), then observe the mode in force."""
    _enter_and_leave(run, exit_by)
    return _grad_mode_and_a_product(x)


#: guards entered to switch off an inference mode a compiled program left entered (kept for the rest of the process)
_INFERENCE_MODE_REPAIRS: list = []


def _undo_a_leaked_inference_mode() -> None:
    """Switch inference mode off (and grad mode back on) if a compiled program left it entered, so that the leak
    fails the test that caused it (its assertions ran first) instead of every test after it.  Inference mode has
    no public setter: an ``inference_mode(False)`` guard is entered and kept, as the leaked one is."""
    if torch.is_inference_mode_enabled():
        guard = torch._C._InferenceMode(False)
        guard.__enter__()
        _INFERENCE_MODE_REPAIRS.append(guard)
    torch.set_grad_enabled(True)


def _expect_grad_mode(observed: bool, expected: bool, *, clause: str, where: str) -> None:
    """:func:`assert_grad_mode` for a mode a (possibly compiled) program observed and returned."""
    __tracebackhide__ = True
    if observed is not expected:
        fail(clause, f"{where}, torch.is_grad_enabled() should be {expected}, but it is {observed}")


# ----------------------------------------------------------------------------- GRADMODE-1, -2, -3


@pytest.mark.spec("GRADMODE-1")
@pytest.mark.parametrize("form", sorted(NO_GRAD))
@given(data=st.data())
def test_no_grad_records_nothing(device, mode, form, data):
    graph = data.draw(graphs(device=device, recording=True, mode=mode), label="graph")  # grad mode would record it
    for where in placements(mode):
        outputs = run_in_grad_mode(NO_GRAD[form], graph.program, *graph.leaves, mode=mode, where=where)
        for step in graph.results(outputs):
            if step.output.grad_fn is not None:
                fail("GRADMODE-1", f"inside no_grad ({form}{placement_note(mode, where)}), `{step.source}` was recorded: grad_fn={step.output.grad_fn}")


@pytest.mark.spec("GRADMODE-2")
@pytest.mark.parametrize("form", sorted(NO_GRAD))
@given(data=st.data())
def test_no_grad_results_do_not_require_grad(device, mode, form, data):
    graph = data.draw(graphs(device=device, requires_grad=True, computes=True, mode=mode), label="graph")
    for where in placements(mode):
        outputs = run_in_grad_mode(NO_GRAD[form], graph.program, *graph.leaves, mode=mode, where=where)
        new_results = [step for step in graph.results(outputs) if not _is_alias(step)]
        if not new_results:
            vacuous("every step was a view: the clause says nothing about them")
            return
        for step in new_results:
            assert_requires_grad(step.output, False, clause="GRADMODE-2", what=f"inside no_grad ({form}{placement_note(mode, where)}), `{step.source}`")


#: views of a 2-d tensor: source -> the view taken of ``x``
_VIEWS = {
    "x.transpose(0, 1)": lambda x: x.transpose(0, 1),
    "x.view(-1)": lambda x: x.view(-1),
    "x[0]": lambda x: x[0],
    "x.unsqueeze(0)": lambda x: x.unsqueeze(0),
    "x.expand(2, -1, -1)": lambda x: x.expand(2, -1, -1),
}


def _take_views(x):
    """Every view of :data:`_VIEWS`, in order."""
    return tuple(take(x) for take in _VIEWS.values())


@pytest.mark.spec("GRADMODE-3")
@pytest.mark.parametrize("form", sorted(NO_GRAD))
@given(data=st.data())
def test_view_under_no_grad_shares_requires_grad(device, mode, form, data):
    base = data.draw(tensors(shape=st.tuples(st.integers(1, 4), st.integers(1, 4)), device=device, requires_grad=True), label="base")
    for where in placements(mode):
        views = run_in_grad_mode(NO_GRAD[form], _take_views, base, mode=mode, where=where)
        for source, view in zip(_VIEWS, views):
            what = f"the view `{source}` of a tensor requiring grad, taken inside no_grad ({form}{placement_note(mode, where)})"
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


def _resume_decorated_generator(decorator: str, caller_modes: list, observe):
    """A generator function decorated with ``decorator`` whose body records ``observe()`` each time it runs, resumed
    once by a caller in each of ``caller_modes``: (what the body observed, the caller's grad mode after each resumption)."""
    observed, after = [], []

    @NO_GRAD_DECORATORS[decorator]()
    def generator():
        while True:
            observed.append(observe())
            yield

    resumptions = generator()
    for caller_mode in caller_modes:
        with torch.set_grad_enabled(caller_mode):
            next(resumptions)
            after.append(torch.is_grad_enabled())
    resumptions.close()
    return observed, after


def _grad_mode():
    return torch.is_grad_enabled()


@pytest.mark.spec("GRADMODE-4")
@pytest.mark.parametrize("decorator", sorted(NO_GRAD_DECORATORS))
@given(caller_modes=_caller_modes())
def test_no_grad_decorated_generator(mode, decorator, caller_modes):
    """Compiled: the generator, its resumptions and the caller's modes inside the compiled function, or a compiled
    function called by the generator's body (its graph must be the one for the mode the decorator set)."""
    for where in placements(mode):
        if where == AROUND:
            observed, after = _resume_decorated_generator(decorator, caller_modes, mode.compile(_grad_mode))
        else:
            observed, after = mode.run(_resume_decorated_generator, decorator, caller_modes, _grad_mode)
        note = placement_note(mode, where)
        for index, (caller_mode, seen) in enumerate(zip(caller_modes, after)):
            where_ = f"after resumption {index} of a {decorator} generator by a caller in grad modes {caller_modes}{note}"
            _expect_grad_mode(seen, caller_mode, clause="GRADMODE-4", where=where_)
        assert_equal(observed, [False] * len(caller_modes), clause="GRADMODE-4", what=f"grad mode seen inside the {decorator} generator body at each resumption{note}")


@pytest.mark.spec("GRADMODE-5")
@EXIT_BY
@pytest.mark.parametrize("form", sorted(NO_GRAD))
@pytest.mark.parametrize("outer_mode", [True, False])
def test_leaving_no_grad_restores_previous_mode(mode, form, exit_by, outer_mode):
    """Compiled: no_grad entered and left inside the compiled function, or the compiled function called inside
    no_grad and again after it was left (its guards must choose the graph for the restored mode)."""
    x = torch.ones(2, requires_grad=True)
    for where in placements(mode):
        with torch.set_grad_enabled(outer_mode):
            if where == AROUND:
                observe = mode.compile(_grad_mode_and_a_product)
                _enter_and_leave(lambda leave: NO_GRAD[form](lambda: (observe(x), leave())), exit_by)
                enabled, product = observe(x)
            else:
                enabled, product = mode.run(_leave_then_observe, NO_GRAD[form], exit_by, x)
            where_ = f"after leaving no_grad ({form}, by {exit_by}{placement_note(mode, where)}) entered with grad mode {outer_mode}"
            assert_grad_mode(outer_mode, clause="GRADMODE-5", where=where_)
            _expect_grad_mode(enabled, outer_mode, clause="GRADMODE-5", where=f"{where_}, in the program")
            assert_requires_grad(product, outer_mode, clause="GRADMODE-5", what=f"x * 2 computed {where_}")


def _nest_no_grad_and_enable_grad(kinds: list, x):
    """Enter a no_grad or enable_grad block per entry of ``kinds``, each inside the previous one; observe the mode
    (:func:`_grad_mode_and_a_product`) inside every level on the way in, and after leaving it on the way out."""
    observed = []

    def enter(level: int) -> None:
        if level == len(kinds):
            return
        with (torch.no_grad() if kinds[level] == "no_grad" else torch.enable_grad()):
            observed.append(_grad_mode_and_a_product(x))
            enter(level + 1)
        observed.append(_grad_mode_and_a_product(x))

    enter(0)
    return observed


@pytest.mark.spec("GRADMODE-5")
@given(depth=st.integers(1, 5), data=st.data())
def test_nested_no_grad_and_enable_grad_restore_each_level(mode, depth, data):
    """A random nest of no_grad/enable_grad blocks: every level restores the mode of the level outside it."""
    kinds = data.draw(st.lists(st.sampled_from(["no_grad", "enable_grad"]), min_size=depth, max_size=depth), label="nesting")
    x = torch.ones(2, requires_grad=True)
    observed = mode.run(_nest_no_grad_and_enable_grad, kinds, x)
    path = "/".join(kinds)
    expected = [(kind == "enable_grad", f"inside {'/'.join(kinds[: level + 1])}") for level, kind in enumerate(kinds)]
    expected += [(level == 0 or kinds[level - 1] == "enable_grad", f"after leaving level {level} ({kinds[level]}) of {path}") for level in reversed(range(depth))]
    note = f" ({mode})" if mode.compiled else ""
    for (enabled, product), (expected_mode, where) in zip(observed, expected):
        _expect_grad_mode(enabled, expected_mode, clause="GRADMODE-5", where=where + note)
        assert_requires_grad(product, expected_mode, clause="GRADMODE-5", what=f"x * 2 computed {where}{note}")


# ----------------------------------------------------------------------------- GRADMODE-6

#: GRADMODE-6 in a compiled mode also enters no_grad inside the compiled function, around the enable_grad there
_BOTH_INSIDE = "no_grad and enable_grad entered inside the compiled function"


def _enable_grad_within_no_grad(run, program, *leaves):
    """``program(*leaves)`` inside ``run`` (an enable_grad form) inside ``torch.no_grad()``: (grad mode inside
    enable_grad, its outputs, grad mode in no_grad after enable_grad was left)."""
    with torch.no_grad():
        enabled_inside, outputs = run(lambda: (torch.is_grad_enabled(), program(*leaves)))
        enabled_after = torch.is_grad_enabled()
    return enabled_inside, outputs, enabled_after


@pytest.mark.spec("GRADMODE-6")
@pytest.mark.parametrize("form", sorted(ENABLE_GRAD))
@given(data=st.data())
def test_enable_grad_inside_no_grad_records(device, mode, form, data):
    """Compiled: enable_grad inside or around the compiled function called inside no_grad, and both modes inside it."""
    graph = data.draw(graphs(device=device, requires_grad=True, mode=mode), label="graph")

    def observed_program(*leaves):
        return torch.is_grad_enabled(), graph.program(*leaves)

    for where in placements(mode) + ((_BOTH_INSIDE,) if mode.compiled else ()):
        if where == _BOTH_INSIDE:
            enabled_inside, outputs, enabled_after = mode.run(_enable_grad_within_no_grad, ENABLE_GRAD[form], graph.program, *graph.leaves)
        else:
            with torch.no_grad():
                enabled_inside, outputs = run_in_grad_mode(ENABLE_GRAD[form], observed_program, *graph.leaves, mode=mode, where=where)
                enabled_after = torch.is_grad_enabled()
        note = placement_note(mode, where)
        _expect_grad_mode(enabled_after, False, clause="GRADMODE-6", where=f"inside no_grad after leaving enable_grad ({form}{note})")
        assert_equal(enabled_inside, True, clause="GRADMODE-6", what=f"torch.is_grad_enabled() inside enable_grad ({form}{note}) within no_grad")
        for step in graph.results(outputs):
            if not _returns_an_input(step) and step.output.grad_fn is None:
                fail("GRADMODE-6", f"inside enable_grad ({form}{note}) within no_grad, `{step.source}` was not recorded")


# ----------------------------------------------------------------------------- GRADMODE-7, -8, -9


def _switch_with_set_grad_enabled(x):
    """set_grad_enabled(False), compute, set_grad_enabled(True), compute: the mode and the product after each call."""
    torch.set_grad_enabled(False)
    disabled_mode, disabled = _grad_mode_and_a_product(x)
    torch.set_grad_enabled(True)
    enabled_mode, enabled = _grad_mode_and_a_product(x)
    return disabled_mode, disabled, enabled_mode, enabled


def _disable_grad():
    torch.set_grad_enabled(False)


def _enable_grad():
    torch.set_grad_enabled(True)


#: GRADMODE-7 in a compiled mode also calls set_grad_enabled in compiled functions of its own
_ACROSS = "called in one compiled function, in force in the next"


@pytest.mark.spec("GRADMODE-7")
@given(data=st.data())
def test_set_grad_enabled_as_a_function(device, mode, data):
    """Compiled: both calls and both products inside one compiled function; the products compiled, the calls made
    around them; and each call in a compiled function of its own, in force after it returned."""
    x = data.draw(tensors(device=device, requires_grad=True), label="x")
    for where in placements(mode) + ((_ACROSS,) if mode.compiled else ()):
        note = placement_note(mode, where)
        try:
            if where == INSIDE:
                disabled_mode, disabled, enabled_mode, enabled = mode.run(_switch_with_set_grad_enabled, x)
                _expect_grad_mode(enabled_mode, True, clause="GRADMODE-7", where=f"after torch.set_grad_enabled(True){note}")
            else:
                observe = mode.compile(_grad_mode_and_a_product)
                disable, enable = (mode.compile(_disable_grad), mode.compile(_enable_grad)) if where == _ACROSS else (_disable_grad, _enable_grad)
                disable()
                assert_grad_mode(False, clause="GRADMODE-7", where=f"after torch.set_grad_enabled(False){note}")
                disabled_mode, disabled = observe(x)
                enable()
                assert_grad_mode(True, clause="GRADMODE-7", where=f"after torch.set_grad_enabled(True){note}")
                enabled_mode, enabled = observe(x)
        finally:
            torch.set_grad_enabled(True)
        _expect_grad_mode(disabled_mode, False, clause="GRADMODE-7", where=f"after torch.set_grad_enabled(False){note}")
        _expect_grad_mode(enabled_mode, True, clause="GRADMODE-7", where=f"after torch.set_grad_enabled(True){note}")
        assert_requires_grad(disabled, False, clause="GRADMODE-7", what=f"x * 2 computed after torch.set_grad_enabled(False){note}")
        assert_requires_grad(enabled, True, clause="GRADMODE-7", what=f"x * 2 computed after torch.set_grad_enabled(True){note}")


def _set_grad_enabled_block(inner_mode: bool, exit_by: str, x):
    """``with torch.set_grad_enabled(inner_mode):`` left normally or by an exception: the mode observed inside it,
    then the mode observed after it (each as :func:`_grad_mode_and_a_product`)."""
    inside = None
    try:
        with torch.set_grad_enabled(inner_mode):
            inside = _grad_mode_and_a_product(x)
            if exit_by == "exception":
                raise _Leave
    except _Leave:
        pass
    return inside, _grad_mode_and_a_product(x)


@pytest.mark.spec("GRADMODE-8")
@EXIT_BY
@pytest.mark.parametrize("outer_mode", [True, False])
@pytest.mark.parametrize("inner_mode", [True, False])
def test_set_grad_enabled_as_a_context_manager(device, mode, inner_mode, outer_mode, exit_by):
    """Compiled: the block inside the compiled function (called in the outer mode), or the compiled function
    called inside the block and after it."""
    x = torch.ones(2, device=device, requires_grad=True)
    for where in placements(mode):
        note = placement_note(mode, where)
        with torch.set_grad_enabled(outer_mode):
            if where == AROUND:
                observe = mode.compile(_grad_mode_and_a_product)
                try:
                    with torch.set_grad_enabled(inner_mode):
                        inside = observe(x)
                        if exit_by == "exception":
                            raise _Leave
                except _Leave:
                    pass
                after = observe(x)
            else:
                inside, after = mode.run(_set_grad_enabled_block, inner_mode, exit_by, x)
            where_after = f"after leaving set_grad_enabled({inner_mode}) by {exit_by}, entered from mode {outer_mode}{note}"
            assert_grad_mode(outer_mode, clause="GRADMODE-8", where=where_after)
        _expect_grad_mode(inside[0], inner_mode, clause="GRADMODE-8", where=f"inside set_grad_enabled({inner_mode}){note}")
        assert_requires_grad(inside[1], inner_mode, clause="GRADMODE-8", what=f"x * 2 inside set_grad_enabled({inner_mode}){note}")
        _expect_grad_mode(after[0], outer_mode, clause="GRADMODE-8", where=f"{where_after}, in the program")
        assert_requires_grad(after[1], outer_mode, clause="GRADMODE-8", what=f"x * 2 computed {where_after}")


#: (mode name, its forms, grad mode inside it when entered from grad mode)
_GRAD_OFF_AND_ON = [("no_grad", NO_GRAD, False), ("set_grad_enabled(False)", SET_GRAD_DISABLED, False), ("inference_mode", INFERENCE_MODE, False), ("inference_mode(False)", INFERENCE_MODE_OFF, True), ("enable_grad", ENABLE_GRAD, True)]


def _within_no_grad(run):
    return lambda fn: NO_GRAD["context manager"](lambda: run(fn))


#: every form of entering a mode, by "mode name (form)": (runner, grad mode inside it when entered from grad mode);
#: enable_grad is also entered inside no_grad
_MODE_ENTRIES = {f"{name} ({form})": (run, inside) for name, forms, inside in _GRAD_OFF_AND_ON for form, run in forms.items()}
_MODE_ENTRIES.update({f"enable_grad ({form}) within no_grad": (_within_no_grad(run), True) for form, run in ENABLE_GRAD.items()})


def _grad_mode_inside_and_after(run):
    """``torch.is_grad_enabled()`` inside ``run`` and once it was left."""
    return run(_grad_mode), torch.is_grad_enabled()


@pytest.mark.spec("GRADMODE-9")
@pytest.mark.parametrize("entry", list(_MODE_ENTRIES))
def test_is_grad_enabled_reports_the_current_mode(mode, entry):
    """Compiled: torch.is_grad_enabled() called in a compiled function, the mode entered inside it or around it."""
    run, inside = _MODE_ENTRIES[entry]
    assert_grad_mode(True, clause="GRADMODE-9", where="by default")
    for where in placements(mode):
        if where == AROUND:
            report = mode.compile(_grad_mode)
            reported_inside, reported_after = run(report), report()
        else:
            reported_inside, reported_after = mode.run(_grad_mode_inside_and_after, run)
        note = placement_note(mode, where)
        _expect_grad_mode(reported_inside, inside, clause="GRADMODE-9", where=f"inside {entry}{note}")
        _expect_grad_mode(reported_after, True, clause="GRADMODE-9", where=f"by default, once {entry} was left{note}")
        assert_grad_mode(True, clause="GRADMODE-9", where=f"by default, once {entry} was left{note}")


@pytest.mark.spec("GRADMODE-9")
def test_set_grad_enabled_as_a_decorator_sets_the_mode_only_inside(mode):
    """Decorating with ``@torch.set_grad_enabled(False)`` changes nothing until the function runs (pytorch/pytorch#113298)."""
    for where in placements(mode):
        if where == AROUND:
            report = mode.compile(_grad_mode)
            reported_inside, reported_after = set_grad_disabled_as_decorator(report), report()
        else:
            reported_inside, reported_after = mode.run(_grad_mode_inside_and_after, set_grad_disabled_as_decorator)
        note = placement_note(mode, where)
        _expect_grad_mode(reported_inside, False, clause="GRADMODE-9", where=f"inside @torch.set_grad_enabled(False){note}")
        after = f"by default, after a function decorated with @torch.set_grad_enabled(False) ran{note}"
        _expect_grad_mode(reported_after, True, clause="GRADMODE-9", where=after)
        assert_grad_mode(True, clause="GRADMODE-9", where=after)


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


def _disable_grad_and_report():
    torch.set_grad_enabled(False)  # the thread ends with grad disabled; it must not leak to the caller's thread
    return torch.is_grad_enabled()


@pytest.mark.spec("GRADMODE-10")
@pytest.mark.parametrize("form", sorted(NO_GRAD))
def test_grad_mode_is_thread_local(device, mode, form):
    """Compiled: the programs run on the new threads are compiled; the one run in the thread started inside
    no_grad was first called (and compiled) in the starting thread, inside no_grad, so the thread's call must
    choose its graph by the thread's own mode.  (Threads are started by the test: dynamo cannot trace
    ``threading.Thread``, so no_grad is entered around the compiled function only.)"""
    x = torch.ones(3, device=device, requires_grad=True)
    observe = mode.compile(_grad_mode_and_a_product)

    def observe_here_and_in_a_thread():
        observe(x)
        return _in_thread(lambda: observe(x))

    enabled, product = NO_GRAD[form](observe_here_and_in_a_thread)
    note = f" ({mode})" if mode.compiled else ""
    assert_equal((enabled, product.requires_grad), (True, True), clause="GRADMODE-10", what=f"(grad mode, (x * 2).requires_grad) in a thread started inside no_grad ({form}){note}")

    disable = mode.compile(_disable_grad_and_report)
    assert_equal(_in_thread(disable), False, clause="GRADMODE-10", what=f"grad mode in the thread after set_grad_enabled(False){note}")
    assert_grad_mode(True, clause="GRADMODE-10", where=f"in the main thread after another thread called set_grad_enabled(False){note}")


# ----------------------------------------------------------------------------- GRADMODE-11, -12, -13


#: the creation forms GRADMODE-11's test runs in compiled modes (see its docstring)
_FACTORIES_EXERCISED_COMPILED = ("ones",)


@pytest.mark.spec("GRADMODE-11")
@pytest.mark.parametrize("form", sorted(NO_GRAD))
@pytest.mark.parametrize("factory", REQUIRES_GRAD_FACTORIES)
@given(data=st.data())
def test_factory_requires_grad_true_under_no_grad(device, mode, form, factory, data):
    """Compiled: dynamo graph-breaks on every creation function called with ``requires_grad=True`` ("Attempted to
    use tensor creation function with requires_grad=True ... Dynamo does not support this"), so the clause is
    reported not compiled; ``torch.ones`` stands for the others there, with no_grad entered inside the compiled
    function (each costs seconds of graph-broken compilations per example, and all break at that one check)."""
    if mode.compiled and factory not in _FACTORIES_EXERCISED_COMPILED:
        pytest.skip(f"not exercised in compiled modes: dynamo graph-breaks on every creation function called with requires_grad=True; {', '.join(_FACTORIES_EXERCISED_COMPILED)} stands for them")
    like = data.draw(tensors(dtype=dtypes(REAL_DTYPES), device=device, requires_grad=st.booleans()), label="tensor to make one like")
    for where in (INSIDE,):  # around the compiled function, the factory inside it graph-breaks at the same check
        made = run_in_grad_mode(NO_GRAD[form], lambda source: create_like(factory, source, requires_grad=True), like, mode=mode, where=where)
        assert_requires_grad(made, True, clause="GRADMODE-11", what=f"{factory}(..., requires_grad=True) inside no_grad ({form}{placement_note(mode, where)})")


def _product_sum(a, b):
    return (a * b).sum()


@pytest.mark.spec("GRADMODE-12")
@pytest.mark.parametrize("form", sorted(NO_GRAD))
@given(data=st.data())
def test_result_computed_under_no_grad_stops_gradient_flow(device, mode, form, data):
    """Compiled: the program (no_grad inside or around it) and the product with the weight are compiled; backward
    runs through the compiled outputs."""
    graph = data.draw(graphs(device=device, requires_grad=True, computes=True, mode=mode), label="graph")
    for where in placements(mode):
        note = placement_note(mode, where)
        outputs = run_in_grad_mode(NO_GRAD[form], graph.program, *graph.leaves, mode=mode, where=where)
        step = next((s for s in reversed(graph.results(outputs)) if not _is_alias(s)), None)
        if step is None:
            vacuous("every step was a view: nothing new was computed")
            return
        detached = step.output
        assert_requires_grad(detached, False, clause="GRADMODE-12", what=f"`{step.source}` computed inside no_grad ({form}{note}), after the block")
        assert_equal(detached.is_leaf, True, clause="GRADMODE-12", what=f"is_leaf of a result computed inside no_grad{note}")
        weight = torch.ones_like(detached, requires_grad=True)
        mode.run(_product_sum, detached, weight).backward()
        for index, leaf in enumerate(graph.leaves):
            if leaf.grad is not None:
                fail("GRADMODE-12", f"leaf t{index} received a gradient through a value computed inside no_grad ({form}{note}):\n{graph!r}")
        if weight.grad is None:
            fail("GRADMODE-12", f"the tensor combined with the no_grad result after the block received no gradient{note}")


_UPDATES = ["param -= lr * param.grad", "param.sub_(lr * param.grad)", "param.add_(param.grad, alpha=-lr)"]


def _update_parameter(update: str, param, lr: float):
    """Apply ``update`` (one of :data:`_UPDATES`) to ``param``; return what the name ``param`` refers to afterwards."""
    if update.startswith("param -="):
        param -= lr * param.grad
    elif update.startswith("param.sub_"):
        param.sub_(lr * param.grad)
    else:
        param.add_(param.grad, alpha=-lr)
    return param


@pytest.mark.spec("GRADMODE-13")
@pytest.mark.parametrize("update", _UPDATES)
@given(data=st.data())
def test_in_place_parameter_update_under_no_grad(device, mode, update, data):
    """Compiled: the update (and its no_grad) inside the compiled function, or the compiled update called inside no_grad."""
    drawn = data.draw(tensors(device=device, requires_grad=True, dtype=torch.float64), label="param")
    lr = data.draw(st.floats(0.01, 1.0), label="lr")
    for where in placements(mode):
        note = placement_note(mode, where)
        param = drawn.detach().clone().requires_grad_(True)
        (param * param).sum().backward()
        expected = param.detach() - lr * param.grad
        same = param
        param = run_in_grad_mode(NO_GRAD["context manager"], lambda p, rate: _update_parameter(update, p, rate), param, lr, mode=mode, where=where)
        assert_equal(param is same, True, clause="GRADMODE-13", what=f"`{update}` under no_grad updates the same tensor object{note}")
        assert_close(param, expected, clause="GRADMODE-13", what=f"values after `{update}` under no_grad{note}")
        assert_requires_grad(param, True, clause="GRADMODE-13", what=f"param after `{update}` under no_grad{note}")
        assert_equal((param.is_leaf, param.grad_fn), (True, None), clause="GRADMODE-13", what=f"(is_leaf, grad_fn) of param after `{update}`{note}")


# ----------------------------------------------------------------------------- GRADMODE-14 .. 18


def _run_in_mode_observing(run, program, *args, mode, where):
    """:func:`run_in_grad_mode`, and ``torch.is_inference_mode_enabled()`` inside ``run`` where the test can ask it:
    not in a compiled function (dynamo graph-breaks on it), so None where the mode is entered inside one."""
    if mode.compiled and where == INSIDE:
        return None, run_in_grad_mode(run, program, *args, mode=mode, where=where)
    compiled = mode.compile(program)
    return run(lambda: (torch.is_inference_mode_enabled(), compiled(*args)))


@pytest.mark.spec("GRADMODE-14")
@pytest.mark.parametrize("form", sorted(INFERENCE_MODE))
@given(data=st.data())
def test_inference_mode_makes_inference_tensors(device, mode, form, data):
    graph = data.draw(graphs(device=device, mode=mode), label="graph")

    def observed_program(*leaves):
        return torch.is_grad_enabled(), graph.program(*leaves)

    for where in placements(mode):
        note = placement_note(mode, where)
        inference_enabled, (grad_enabled, outputs) = _run_in_mode_observing(INFERENCE_MODE[form], observed_program, *graph.leaves, mode=mode, where=where)
        if inference_enabled is not None:
            assert_equal(inference_enabled, True, clause="GRADMODE-14", what=f"torch.is_inference_mode_enabled() inside inference_mode ({form}{note})")
        _expect_grad_mode(grad_enabled, False, clause="GRADMODE-14", where=f"inside inference_mode ({form}{note})")
        for step in graph.results(outputs):
            if _view_of_normal_tensor(step):
                continue  # a view of a normal tensor stays a normal tensor; a view of an inference tensor is one
            what = f"`{step.source}` computed inside inference_mode ({form}{note})"
            assert_equal(step.output.is_inference(), True, clause="GRADMODE-14", what=f"is_inference() of {what}")
            assert_requires_grad(step.output, False, clause="GRADMODE-14", what=what)


#: uses of an inference tensor ``a`` with a tensor ``w`` requiring grad that save ``a`` for backward
_SAVING_USES = {
    "inference * weight": lambda a, w: a * w,
    "torch.mul(weight, inference)": lambda a, w: torch.mul(w, a),
    "inference @ weight.mT": lambda a, w: a @ w.mT,
}


@pytest.mark.spec("GRADMODE-15")
@given(data=st.data())
def test_inference_tensors_cannot_be_saved_for_backward(device, mode, data):
    shape = data.draw(st.tuples(st.integers(1, 4), st.integers(1, 4)), label="shape")
    with torch.inference_mode():
        inference = data.draw(tensors(shape=shape, device=device, dtype=torch.float32), label="inference tensor") * 1
    weight = torch.ones(shape, device=device, requires_grad=True)
    note = f" ({mode})" if mode.compiled else ""
    for source, use in _SAVING_USES.items():
        with assert_raises(RuntimeError, match="(?i)inference tensors cannot be saved for backward", clause="GRADMODE-15", what=f"`{source}` outside inference mode{note}"):
            mode.run(use, inference, weight)


@pytest.mark.spec("GRADMODE-16")
@pytest.mark.parametrize("update", ["add_(1)", "mul_(2)", "zero_()", "fill_(3)", "+= 1", "copy_"])
def test_inference_tensors_are_immutable_outside_inference_mode(device, mode, update):
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
    note = f" ({mode})" if mode.compiled else ""
    with assert_raises(RuntimeError, match="(?i)inplace update to inference tensor", clause="GRADMODE-16", what=f"inference_tensor.{update} outside inference mode{note}"):
        mode.run(apply, inference)


@pytest.mark.spec("GRADMODE-17")
@pytest.mark.parametrize("form", sorted(INFERENCE_MODE_OFF))
@given(data=st.data())
def test_inference_mode_false_keeps_autograd_on(device, mode, form, data):
    graph = data.draw(graphs(device=device, requires_grad=True, mode=mode), label="graph")

    def observed_program(*leaves):
        return torch.is_grad_enabled(), graph.program(*leaves)

    for where in placements(mode):
        note = placement_note(mode, where)
        inference_enabled, (grad_enabled, outputs) = _run_in_mode_observing(INFERENCE_MODE_OFF[form], observed_program, *graph.leaves, mode=mode, where=where)
        if inference_enabled is not None:
            assert_equal(inference_enabled, False, clause="GRADMODE-17", what=f"torch.is_inference_mode_enabled() inside {form}{note}")
        _expect_grad_mode(grad_enabled, True, clause="GRADMODE-17", where=f"inside {form}{note}")
        for step in graph.results(outputs):
            assert_equal(step.output.is_inference(), False, clause="GRADMODE-17", what=f"is_inference() of `{step.source}` inside {form}{note}")
            if not _returns_an_input(step) and step.output.grad_fn is None:
                fail("GRADMODE-17", f"`{step.source}` inside {form}{note} was not recorded")


@pytest.mark.spec("GRADMODE-18")
@EXIT_BY
@pytest.mark.parametrize("form", sorted(INFERENCE_MODE))
@pytest.mark.parametrize("outer_mode", [True, False])
def test_leaving_inference_mode_restores_previous_modes(mode, form, exit_by, outer_mode):
    """Compiled: inference_mode entered and left inside the compiled function, or the compiled function called
    inside inference_mode and again after it was left; ``x * 2`` computed after leaving is no inference tensor."""
    x = torch.ones(2, requires_grad=True)
    for where in placements(mode):
        try:
            with torch.set_grad_enabled(outer_mode):
                if where == AROUND:
                    observe = mode.compile(_grad_mode_and_a_product)
                    _enter_and_leave(lambda leave: INFERENCE_MODE[form](lambda: (observe(x), leave())), exit_by)
                    enabled, product = observe(x)
                else:
                    enabled, product = mode.run(_leave_then_observe, INFERENCE_MODE[form], exit_by, x)
                where_ = f"after leaving inference_mode ({form}, by {exit_by}{placement_note(mode, where)}) entered with grad mode {outer_mode}"
                assert_equal(torch.is_inference_mode_enabled(), False, clause="GRADMODE-18", what=f"torch.is_inference_mode_enabled() {where_}")
                assert_grad_mode(outer_mode, clause="GRADMODE-18", where=where_)
                _expect_grad_mode(enabled, outer_mode, clause="GRADMODE-18", where=f"{where_}, in the program")
                assert_equal(product.is_inference(), False, clause="GRADMODE-18", what=f"is_inference() of x * 2 computed {where_}")
                assert_requires_grad(product, outer_mode, clause="GRADMODE-18", what=f"x * 2 computed {where_}")
        finally:
            _undo_a_leaked_inference_mode()
