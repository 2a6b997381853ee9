"""Hooks.  Spec: specs/hooks.md."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

from conformance.testlib.assertions import assert_close, assert_equal, assert_raises, assert_succeeds, fail
from conformance.testlib.graphs import Graph, aliases_an_operand, graphs
from conformance.testlib.modes import Mode
from conformance.testlib.strategies import ALL_DTYPES, dtypes, shapes, tensors, vacuous


def _as_tuple(value: Any) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _is_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor)


# ----------------------------------------------------------------------------- modules under test


class _Weighted(nn.Module):
    """A custom module: a parameter, two tensor inputs and a number (passed positionally or by keyword)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(-1.0, 1.0, 3))

    def forward(self, a, b, scale=1.0):
        return torch.tanh(a * self.weight + b) * scale


class _TwoOutputs(nn.Module):
    """A custom module without parameters that returns a tuple of two tensors."""

    def forward(self, a, b):
        return a * b, a - torch.sin(b)


class _SeedModel(nn.Module):
    """The seed's ``Model`` (section 4.1.2.1): fc1 (3 -> 4), relu1, fc2 (4 -> 1) with its fixed weights."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(4, 1)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [-4.0, -5.0, -6.0], [7.0, 8.0, 9.0], [-10.0, -11.0, -12.0]]))
            self.fc1.bias.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
            self.fc2.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
            self.fc2.bias.copy_(torch.tensor([1.0]))

    def forward(self, x):
        return self.fc2(self.relu1(self.fc1(x)))


@dataclass(frozen=True)
class ModuleCase:
    """A module and how to call it: the call is ``module(*tensor_inputs, *extra_args, **kwargs)``."""

    source: str  # how the module is built and called, as printed in failure messages
    make: Callable[[], nn.Module]
    input_shapes: Callable[[int], tuple[tuple[int, ...], ...]]  # batch size -> shape of each tensor input
    extra_args: tuple = ()  # non-tensor positional arguments after the tensors
    kwargs: tuple = ()  # (name, value) pairs
    has_parameters: bool = True

    def __repr__(self) -> str:  # hypothesis and pytest ids print this
        return self.source


MODULE_CASES = (
    ModuleCase("nn.Linear(3, 2)(x)", lambda: nn.Linear(3, 2), lambda n: ((n, 3),)),
    ModuleCase("nn.Conv1d(2, 3, kernel_size=2)(x)", lambda: nn.Conv1d(2, 3, kernel_size=2), lambda n: ((n, 2, 4),)),
    ModuleCase("nn.Conv2d(2, 3, kernel_size=2)(x)", lambda: nn.Conv2d(2, 3, kernel_size=2), lambda n: ((n, 2, 3, 3),)),
    ModuleCase("nn.ReLU()(x)", lambda: nn.ReLU(), lambda n: ((n, 3),), has_parameters=False),
    ModuleCase(
        "nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))(x)",
        lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)),
        lambda n: ((n, 3),),
    ),
    ModuleCase("_Weighted()(a, b, 2.0)", _Weighted, lambda n: ((n, 3), (n, 3)), extra_args=(2.0,)),
    ModuleCase("_Weighted()(a, b, scale=2.0)", _Weighted, lambda n: ((n, 3), (n, 3)), kwargs=(("scale", 2.0),)),
    ModuleCase("_TwoOutputs()(a, b)", _TwoOutputs, lambda n: ((n, 3), (n, 3)), has_parameters=False),
)
SINGLE_INPUT_CASES = tuple(case for case in MODULE_CASES if len(case.input_shapes(1)) == 1 and not case.extra_args)
PARAMETER_CASES = tuple(case for case in MODULE_CASES if case.has_parameters)
#: modules whose forward is more than one autograd operation on the inputs alone (parameters, several operations)
MULTI_OPERATION_CASES = tuple(case for case in MODULE_CASES if case.source != "nn.ReLU()(x)")


def _backward_hooked_cases(cases: Sequence[ModuleCase], mode) -> tuple[ModuleCase, ...]:
    """The cases a test of backward hooks draws: all of ``cases``, or in a compiled mode the user-defined modules
    only. On torch 2.13 dynamo breaks the graph at a torch.nn module with a full or deprecated backward hook
    ("Module-level backwards hooks require compiled autograd", "Tensor with grad_fn"): that module runs eagerly, and
    one such example would report the whole test not compiled (the per-module HOOK-9 and HOOK-12 tests show it),
    as graphs(mode=...) draws only ops that compile whole."""
    return tuple(case for case in cases if not case.source.startswith("nn.")) if mode.compiled else tuple(cases)


def _module(case: ModuleCase, device: str) -> nn.Module:
    return case.make().to(device=device, dtype=torch.float64)


def _draw_call(data, case: ModuleCase, device: str, *, requires_grad: bool = False) -> tuple[tuple, dict]:
    """Positional arguments and keyword arguments for one call of ``case``'s module."""
    batch = data.draw(st.integers(1, 3), label="batch size")
    inputs = tuple(
        data.draw(tensors(dtype=torch.float64, shape=shape, device=device, requires_grad=requires_grad), label=f"input {i}")
        for i, shape in enumerate(case.input_shapes(batch))
    )
    return inputs + case.extra_args, dict(case.kwargs)


def _draw_output_weights(data, outputs: tuple, device: str) -> tuple[torch.Tensor, ...]:
    """Weights w_i for the loss sum_i (out_i * w_i).sum(), whose gradient with respect to out_i is w_i."""
    return tuple(
        data.draw(tensors(dtype=torch.float64, shape=tuple(out.shape), device=device), label=f"loss weight of output {i}")
        for i, out in enumerate(outputs)
    )


def _weighted_loss(outputs: tuple, weights: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((out * weight).sum() for out, weight in zip(outputs, weights))


def _new_program(mode: Mode) -> None:
    """In a compiled mode, clear dynamo's caches: each hypothesis example is a new program, compiled as in a fresh
    process. Without it, code compiled for an earlier example would run for this one: dynamo does not guard the
    hooks of torch.nn modules, so an earlier example's module of the same class would lend its hooks (a divergence
    of its own, checked on every draw by :func:`test_module_hooks_registered_after_compiled_calls_on_torch_nn_modules`),
    and a shape seen before recompiles with dynamic shapes."""
    if mode.compiled:
        torch._dynamo.reset()


# ----------------------------------------------------------------------------- tensor hooks: helpers


def _hooked_graph(data, device: str, mode: Mode, *, hooked: Optional[str] = None) -> tuple[Graph, list[torch.Tensor], int]:
    """A float64 graph whose leaves all require grad, all its values t0..tn (run eagerly: the reference), and the
    index of the value to hook: any value, or one of the kind ``hooked`` names ("a leaf", "a non-leaf"); in a
    compiled mode not one of :func:`_not_hooked_in_compiled_programs`."""
    graph = data.draw(graphs(device=device, dtype=torch.float64, requires_grad=True, mode=mode), label="graph")
    values = graph.run()
    first, last = {None: (0, len(values) - 1), "a leaf": (0, len(graph.leaves) - 1), "a non-leaf": (len(graph.leaves), len(values) - 1)}[hooked]
    excluded = set(_not_hooked_in_compiled_programs(graph, values) if mode.compiled else ())
    candidates = [i for i in range(first, last + 1) if i not in excluded]
    assume(candidates)  # rare: in a compiled mode, a program whose output depends on none of its leaves
    index = data.draw(st.sampled_from(candidates), label="index of the hooked value")
    return graph, values, index


def _leaves_the_output_does_not_depend_on(graph: Graph, values: Sequence[torch.Tensor]) -> tuple[int, ...]:
    """The indices of the leaves whose gradient from t<n>.sum() is None."""
    loss = values[-1].sum()
    return tuple(index for index, leaf in enumerate(graph.leaves) if _gradient(loss, leaf) is None)


def _not_hooked_in_compiled_programs(graph: Graph, values: Sequence[torch.Tensor]) -> tuple[int, ...]:
    """The values that tests drawing a random program do not hook in a compiled mode, because a test of their own
    checks them there on every draw: the leaves t<n> does not depend on (a compiled program that computes something
    else from them still calls their hooks: :func:`test_hook_on_an_input_the_output_does_not_depend_on_is_not_called`),
    and t<n> when it is a view of a leaf (a hook on it, registered inside the compiled program, is lost:
    :func:`test_tensor_hook_on_a_returned_view_of_the_input_replaces_the_gradient`)."""
    excluded = _leaves_the_output_does_not_depend_on(graph, values)
    output = values[-1]
    if aliases_an_operand(output, graph.leaves) and not any(output is leaf for leaf in graph.leaves):
        excluded += (len(values) - 1,)
    return excluded


def _program_with_loss(graph: Graph, returned: Sequence[int]) -> Callable[..., tuple[torch.Tensor, ...]]:
    """The graph's program and its loss as one function (the user program a compiled mode compiles whole: a model
    and its loss in one compiled function). It returns the non-leaf values t<i> for i in ``returned``, then the
    loss ``t<n>.sum()``; values it does not return stay inside it, as a user's function keeps its temporaries."""

    returned = tuple(returned)  # constants to dynamo

    def program(*leaves: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values = list(leaves) + list(graph.program(*leaves))
        return tuple(values[i] for i in returned) + (values[-1].sum(),)

    return program


def _run_with_loss(graph: Graph, mode: Mode, returned: Sequence[int]) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """The leaves and the values t<i> for i in ``returned`` (by index), and the loss t<n>.sum(), computed by
    :func:`_program_with_loss` through ``mode``."""
    *outputs, loss = mode.run(_program_with_loss(graph, returned), *graph.leaves)
    values = dict(enumerate(graph.leaves))
    values.update(zip(returned, outputs))
    return values, loss


def _describe(graph: Graph, index: int) -> str:
    kind = "leaf" if index < len(graph.leaves) else "non-leaf"
    return f"hook on {graph.name(index)} ({kind}), backward of {graph.name(graph.n_values - 1)}.sum()"


def _gradient(loss: torch.Tensor, tensor: torch.Tensor) -> Optional[torch.Tensor]:
    return torch.autograd.grad(loss, tensor, retain_graph=True, allow_unused=True)[0]


def _add(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return b if a is None else a if b is None else a + b


def _leaf_grads_with_replaced_gradient(graph: Graph, values, index: int, loss, replace: Callable) -> list[Optional[torch.Tensor]]:
    """Each leaf's gradient when the gradient g of values[index] is replaced by replace(g).

    Backward is linear in the gradient flowing through values[index], so the leaves get
    their ordinary gradient plus the vector-Jacobian product of (replace(g) - g).  That needs
    a finite g: None when g has a NaN or an infinity (the mean of an empty tensor is NaN), for
    which this oracle cannot say what the leaves get.
    """
    ordinary = list(torch.autograd.grad(loss, graph.leaves, retain_graph=True, allow_unused=True))
    gradient = _gradient(loss, values[index])
    if gradient is None:
        return ordinary
    if not torch.isfinite(gradient).all():
        return None
    change = replace(gradient) - gradient
    extra = torch.autograd.grad(values[index], graph.leaves, grad_outputs=change, retain_graph=True, allow_unused=True)
    return [_add(a, b) for a, b in zip(ordinary, extra)]


def _check_leaf_grads(graph: Graph, expected: Sequence[Optional[torch.Tensor]], *, clause: str, what: str) -> None:
    __tracebackhide__ = True
    for index, (leaf, want) in enumerate(zip(graph.leaves, expected)):
        if want is None:
            assert_equal(leaf.grad, None, clause=clause, what=f"{what}: .grad of t{index}, which the output does not depend on")
        else:
            assert_close(leaf.grad, want, clause=clause, what=f"{what}: .grad of t{index}")


#: what a tensor hook returns, given the gradient it receives: source -> fn(grad), None meaning "returns None"
GRADIENT_REPLACEMENTS: dict[str, Callable[[torch.Tensor], Optional[torch.Tensor]]] = {
    "grad * 2": lambda grad: grad * 2,
    "grad + 1": lambda grad: grad + 1,
    "-grad": lambda grad: -grad,
    "torch.zeros_like(grad)": torch.zeros_like,
    "None (only looks at it)": lambda grad: None,
}


def _applied(name: str, grad: torch.Tensor) -> torch.Tensor:
    """The gradient after a hook of GRADIENT_REPLACEMENTS[name]: its result, or its input when it returns None."""
    result = GRADIENT_REPLACEMENTS[name](grad)
    return grad if result is None else result


# ----------------------------------------------------------------------------- HOOK-1


@pytest.mark.spec("HOOK-1")
@given(data=st.data())
def test_tensor_hook_receives_the_gradient_of_its_tensor(device, mode, data):
    _new_program(mode)
    graph = data.draw(graphs(device=device, dtype=torch.float64, requires_grad=True, mode=mode), label="graph")
    reference = graph.run()  # run eagerly: what each hook should receive
    reference_loss = reference[-1].sum()
    # the user program: the graph and its loss (one compiled function in a compiled mode), returning every value
    values, loss = _run_with_loss(graph, mode, returned=range(len(graph.leaves), graph.n_values))
    # a hook on every value, leaves and non-leaves alike, each recording what it receives
    hooked = [index for index, value in sorted(values.items()) if value.requires_grad]
    expected = {index: _gradient(reference_loss, reference[index]) for index in hooked}
    received: dict[int, list[torch.Tensor]] = {index: [] for index in hooked}
    for index in hooked:
        values[index].register_hook(lambda grad, calls=received[index]: calls.append(grad if grad is None else grad.clone()))
    loss.backward()
    for index in hooked:
        what = f"{_describe(graph, index)} ({mode})\n{graph!r}\n"
        if expected[index] is None:
            assert_equal(len(received[index]), 0, clause="HOOK-1", what=f"number of calls of a hook on a value the output does not depend on: {what}")
            continue
        assert_equal(len(received[index]), 1, clause="HOOK-1", what=f"number of calls of a {what}")
        if received[index][0] is None:
            fail("HOOK-1", f"the gradient received by a {what}should be a tensor equal to torch.autograd.grad's {expected[index]}; the hook received None")
        assert_close(received[index][0], expected[index], clause="HOOK-1", what=f"gradient received by a {what}vs torch.autograd.grad")


@pytest.mark.spec("HOOK-1")
@given(data=st.data())
def test_hook_on_an_input_the_output_does_not_depend_on_is_not_called(device, mode, data):
    _new_program(mode)
    # A program with two results, each from one input; backward runs through the first result only.
    shape = data.draw(shapes(min_side=1), label="shape")
    w, x = (data.draw(tensors(dtype=torch.float64, shape=shape, device=device, requires_grad=True), label=name) for name in ("w", "x"))
    received = []
    x.register_hook(lambda grad: received.append(grad))
    used, unused = mode.run(lambda w, x: (torch.sin(w) * 2, torch.cos(x)), w, x)
    used.sum().backward()
    what = f"a hook on x, backward of a.sum() where (a, b) = (torch.sin(w) * 2, torch.cos(x)) ({mode})"
    assert_equal(len(received), 0, clause="HOOK-1", what=f"number of calls of {what}")
    assert_equal(x.grad, None, clause="HOOK-1", what=f"x.grad after {what}")


# ----------------------------------------------------------------------------- HOOK-2, -3


def _program_hooking(graph: Graph, index: int, hook: Callable) -> Callable[..., tuple[torch.Tensor, ...]]:
    """The graph's program that registers ``hook`` on the value t<index> (a leaf: its input) inside it and returns its
    output t<n>: the hook is part of the user program (compiled with it in a compiled mode)."""

    def program(*leaves: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = graph.program(*leaves)
        (list(leaves) + list(outputs))[index].register_hook(hook)
        return outputs[-1]

    return program


@pytest.mark.spec("HOOK-2")
@pytest.mark.parametrize("replacement", sorted(GRADIENT_REPLACEMENTS))
@given(data=st.data())
def test_tensor_hook_return_value_replaces_the_gradient(device, mode, replacement, data):
    _new_program(mode)
    graph, reference, index = _hooked_graph(data, device, mode)
    expected = _leaf_grads_with_replaced_gradient(graph, reference, index, reference[-1].sum(), lambda grad: _applied(replacement, grad))
    if expected is None:
        vacuous("the hooked value's gradient is not finite: the linear oracle cannot say what the leaves get")
        return
    # the user program registers the hook inside (in a compiled mode: a hook registered inside compiled code)
    output = mode.run(_program_hooking(graph, index, GRADIENT_REPLACEMENTS[replacement]), *graph.leaves)
    output.sum().backward()
    _check_leaf_grads(graph, expected, clause="HOOK-2", what=f"{_describe(graph, index)} returning `{replacement}`, registered inside the program ({mode})\n{graph!r}\n")


#: views of its input x that a program may return: source -> fn(x) (x has at least one dimension)
INPUT_VIEWS = {
    "x[None]": lambda x: x[None],
    "x.unsqueeze(0)": lambda x: x.unsqueeze(0),
    "x.view(x.shape)": lambda x: x.view(x.shape),
    "x.transpose(0, -1)": lambda x: x.transpose(0, -1),
    "x[...]": lambda x: x[...],
    "x[:1]": lambda x: x[:1],
}


@pytest.mark.spec("HOOK-2")
@given(data=st.data())
def test_tensor_hook_on_a_returned_view_of_the_input_replaces_the_gradient(device, mode, data):
    _new_program(mode)
    x = data.draw(tensors(dtype=torch.float64, shape=shapes(min_dims=1, min_side=1), device=device, requires_grad=True), label="x")
    view = data.draw(st.sampled_from(sorted(INPUT_VIEWS)), label="the view returned")
    # a replacement that changes every gradient of ones: the result differs from the gradient the hook receives
    replacement = data.draw(st.sampled_from(sorted(name for name in GRADIENT_REPLACEMENTS if name != "None (only looks at it)")), label="hook")
    hook = GRADIENT_REPLACEMENTS[replacement]
    reference = INPUT_VIEWS[view](x)
    (expected,) = torch.autograd.grad(reference, x, grad_outputs=hook(torch.ones_like(reference)))

    def program(x):
        y = INPUT_VIEWS[view](x)
        y.register_hook(hook)
        return y

    mode.run(program, x).sum().backward()
    assert_close(x.grad, expected, clause="HOOK-2", what=f"x.grad after backward of y.sum(), y = {view} returned by a function that registered a hook returning `{replacement}` on y ({mode})")


def _register_doubling_hook(v: torch.Tensor) -> None:
    v.register_hook(lambda grad: grad * 2)


@pytest.mark.spec("HOOK-2")
def test_leaf_hook_return_value_is_what_accumulates_into_grad(device, mode):
    # The example of the register_hook documentation, then a second pass: .grad adds the hook's result again.
    # The hook is registered by a function (compiled in a compiled mode); backward runs on the leaf itself.
    v = torch.tensor([0.0, 0.0, 0.0], device=device, requires_grad=True)
    mode.run(_register_doubling_hook, v)
    v.backward(torch.tensor([1.0, 2.0, 3.0], device=device))
    assert_close(v.grad, torch.tensor([2.0, 4.0, 6.0]), clause="HOOK-2", what=f"v.grad with a hook returning grad * 2 (the documented example; {mode})")
    v.backward(torch.tensor([1.0, 1.0, 1.0], device=device))
    assert_close(v.grad, torch.tensor([4.0, 6.0, 8.0]), clause="HOOK-2", what=f"v.grad after a second backward with the same hook ({mode})")


@pytest.mark.spec("HOOK-3")
@pytest.mark.parametrize("hooked", ["a leaf", "a non-leaf"])
@given(data=st.data())
def test_hooks_on_one_tensor_run_in_registration_order(device, mode, hooked, data):
    _new_program(mode)
    graph, reference, index = _hooked_graph(data, device, mode, hooked=hooked)
    chain = data.draw(st.lists(st.sampled_from(sorted(GRADIENT_REPLACEMENTS)), min_size=2, max_size=4), label="hooks, in registration order")

    def through_chain(grad):
        for name in chain:
            grad = _applied(name, grad)
        return grad

    reference_loss = reference[-1].sum()
    gradient = _gradient(reference_loss, reference[index])
    expected = _leaf_grads_with_replaced_gradient(graph, reference, index, reference_loss, through_chain)
    # the user program: the graph and its loss (one compiled function in a compiled mode), returning the hooked
    # value when it is not a leaf; the hooks go on that result
    values, loss = _run_with_loss(graph, mode, returned=[index] if index >= len(graph.leaves) else [])
    received: list[tuple[int, Optional[torch.Tensor]]] = []
    for position, name in enumerate(chain):
        replace = GRADIENT_REPLACEMENTS[name]
        values[index].register_hook(
            lambda grad, position=position, replace=replace: (received.append((position, grad if grad is None else grad.clone())), None if grad is None else replace(grad))[1]
        )
    loss.backward()
    what = f"{_describe(graph, index)}, hooks in registration order: {', '.join(f'`{name}`' for name in chain)} ({mode})\n{graph!r}\n"
    if gradient is None:
        assert_equal(received, [], clause="HOOK-3", what=f"calls of hooks on a value the output does not depend on; {what}")
        return
    assert_equal([position for position, _ in received], list(range(len(chain))), clause="HOOK-3", what=f"order of the hook calls; {what}")
    grad = gradient
    for position, name in enumerate(chain):
        if received[position][1] is None:
            fail("HOOK-3", f"hook {position} should receive a tensor equal to {grad}; it received None; {what}")
        assert_close(received[position][1], grad, clause="HOOK-3", what=f"gradient received by hook {position}; {what}")
        grad = _applied(name, grad)
    if expected is not None:  # None: a non-finite gradient, which the linear oracle cannot follow (the order and the received gradients are checked)
        _check_leaf_grads(graph, expected, clause="HOOK-3", what=f"the last hook's gradient flows on; {what}")


# ----------------------------------------------------------------------------- HOOK-4

def _new_tensor(data, device, x):
    return data.draw(tensors(dtype=dtypes(ALL_DTYPES), device=device), label="t")


def _under_no_grad(data, device, x):
    with torch.no_grad():
        return torch.sin(x) * 2


#: tensors that do not require grad: source -> fn(data, device, x) where x is a float64 tensor requiring grad
NOT_REQUIRING_GRAD = {
    "a new tensor of any dtype": _new_tensor,
    "x.detach()": lambda data, device, x: x.detach(),
    "torch.sin(x) * 2 under torch.no_grad()": _under_no_grad,
    "x > 0 (bool)": lambda data, device, x: x > 0,
    "x.long()": lambda data, device, x: x.long(),
}


@pytest.mark.spec("HOOK-4")
@pytest.mark.parametrize("form", sorted(NOT_REQUIRING_GRAD))
@given(data=st.data())
def test_register_hook_on_a_tensor_not_requiring_grad_raises(device, mode, form, data):
    _new_program(mode)
    x = data.draw(tensors(dtype=torch.float64, device=device, requires_grad=True), label="x")
    tensor = NOT_REQUIRING_GRAD[form](data, device, x)
    assert_equal(tensor.requires_grad, False, clause="HOOK-4", what=f"requires_grad of {form} (the precondition)")
    # the registration is the user program: a function (compiled in a compiled mode) given the tensor
    with assert_raises(RuntimeError, clause="HOOK-4", what=f"({form}).register_hook(hook).remove() ({mode})"):
        mode.run(_register_and_remove_identity_hook, tensor)
    with assert_succeeds(clause="HOOK-4", what=f"x.register_hook(hook).remove() on x that requires grad ({mode})"):
        mode.run(_register_and_remove_identity_hook, x)


def _register_and_remove_identity_hook(t: torch.Tensor) -> None:
    t.register_hook(lambda grad: grad).remove()


# ----------------------------------------------------------------------------- HOOK-5


def _recording(calls: list, tag: str) -> Callable[..., None]:
    """A hook of any kind that records its calls and returns None (changes nothing)."""
    return lambda *args: calls.append(tag)


def _sin_times_3(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(x) * 3


def _tensor_hook_scenario(leaf: bool):
    """Recording hooks on a leaf x or on the non-leaf sin(x) * 3 (computed by a function, compiled in a compiled
    mode); a pass is one backward of (h * h).sum() (the graph is kept)."""

    def build(data, device, mode):
        x = data.draw(tensors(dtype=torch.float64, shape=shapes(max_dims=2), device=device, requires_grad=True), label="x")
        hidden = mode.run(_sin_times_3, x)
        hooked = x if leaf else hidden
        loss = (hidden * hidden).sum()

        def register(calls: list, tag: str):
            return hooked.register_hook(_recording(calls, tag))

        def run_pass() -> None:
            loss.backward(retain_graph=True)

        return register, run_pass, "x.register_hook" if leaf else "(torch.sin(x) * 3).register_hook"

    return build


def _module_hook_scenario(kind: str):
    """Recording hooks of one kind (a Module.register_* method) on a drawn module; a pass is one forward through
    the module (compiled in a compiled mode: ``mode.module``) and one backward."""

    def build(data, device, mode):
        cases = _backward_hooked_cases(MODULE_CASES, mode) if "backward" in kind else MODULE_CASES
        case = data.draw(st.sampled_from(cases), label="module")
        module = _module(case, device)
        compiled = mode.module(module)
        args, kwargs = _draw_call(data, case, device, requires_grad=True)

        def register(calls: list, tag: str):
            return getattr(module, kind)(_recording(calls, tag))

        def run_pass() -> None:
            sum(out.sum() for out in _as_tuple(compiled(*args, **kwargs))).backward()

        return register, run_pass, f"module.{kind} on the module of `{case.source}`"

    return build


#: scenario -> build(data, device, mode) returning (register(calls, tag) -> handle, one forward and backward pass, source)
REMOVAL_SCENARIOS = {
    "Tensor.register_hook (leaf)": _tensor_hook_scenario(leaf=True),
    "Tensor.register_hook (non-leaf)": _tensor_hook_scenario(leaf=False),
    "Module.register_forward_pre_hook": _module_hook_scenario("register_forward_pre_hook"),
    "Module.register_forward_hook": _module_hook_scenario("register_forward_hook"),
    "Module.register_full_backward_hook": _module_hook_scenario("register_full_backward_hook"),
}


@pytest.mark.spec("HOOK-5")
@pytest.mark.parametrize("scenario", sorted(REMOVAL_SCENARIOS))
@given(data=st.data())
def test_handle_remove_unregisters_exactly_that_hook(device, mode, scenario, data):
    _new_program(mode)
    register, run_pass, source = REMOVAL_SCENARIOS[scenario](data, device, mode)
    source = f"{source}; {mode}"
    calls: list[str] = []
    first_handle = register(calls, "first")
    second_handle = register(calls, "second")
    run_pass()
    assert_equal(sorted(calls), ["first", "second"], clause="HOOK-5", what=f"hooks called in a pass with both registered ({source})")
    first_handle.remove()
    calls.clear()
    run_pass()
    assert_equal(calls, ["second"], clause="HOOK-5", what=f"hooks called in a pass after the first handle's remove() ({source})")
    with assert_succeeds(clause="HOOK-5", what=f"a second remove() of the same handle ({source})"):
        first_handle.remove()
    calls.clear()
    run_pass()
    assert_equal(calls, ["second"], clause="HOOK-5", what=f"hooks called in a pass after a second remove() of the first handle ({source})")
    second_handle.remove()
    calls.clear()
    run_pass()
    assert_equal(calls, [], clause="HOOK-5", what=f"hooks called in a pass after both handles' remove() ({source})")


# ----------------------------------------------------------------------------- HOOK-6


@pytest.mark.spec("HOOK-6")
@given(data=st.data())
def test_forward_hook_sees_module_positional_inputs_and_output(device, mode, data):
    _new_program(mode)
    case = data.draw(st.sampled_from(MODULE_CASES), label="module")
    module = _module(case, device)
    compiled = mode.module(module)  # the hook is registered on the module; calls go through the compiled module
    seen = []
    module.register_forward_hook(lambda m, args, output: seen.append((m, args, output)))
    n_calls = data.draw(st.integers(1, 3), label="number of calls")
    for call in range(n_calls):
        args, kwargs = _draw_call(data, case, device, requires_grad=data.draw(st.booleans(), label="inputs require grad"))
        returned = compiled(*args, **kwargs)
        what = f"call {call} of `{case.source}` ({mode})"
        assert_equal(len(seen), call + 1, clause="HOOK-6", what=f"number of forward hook calls after {what}")
        hooked_module, hooked_args, hooked_output = seen[-1]
        assert_equal(hooked_module is module, True, clause="HOOK-6", what=f"the hook's module argument is the module ({what})")
        assert_equal(type(hooked_args), tuple, clause="HOOK-6", what=f"type of the hook's args ({what})")
        assert_equal(len(hooked_args), len(args), clause="HOOK-6", what=f"len(args) seen by the hook: the positional arguments only ({what})")
        for position, (got, given_arg) in enumerate(zip(hooked_args, args)):
            assert_equal(got is given_arg, True, clause="HOOK-6", what=f"args[{position}] seen by the hook is the argument passed ({what})")
        assert_equal(hooked_output is returned, True, clause="HOOK-6", what=f"the hook's output is the value the call returned ({what})")
        for position, (got, direct) in enumerate(zip(_as_tuple(hooked_output), _as_tuple(module.forward(*args, **kwargs)))):
            assert_close(got, direct, clause="HOOK-6", what=f"output {position} seen by the hook vs module.forward(...) ({what})")


@pytest.mark.spec("HOOK-6")
def test_seed_forward_hooks_on_named_children_collect_every_feature(device, mode):
    model = _SeedModel().to(device)
    names, features_in, features_out = [], [], []

    def hook_fn_forward(module, args, output):  # the seed's hook, collecting instead of printing
        names.append(type(module).__name__)
        features_in.append(args)
        features_out.append(output)

    for _, module in model.named_children():
        module.register_forward_hook(hook_fn_forward)
    x = torch.tensor([[1.0, 1.0, 1.0]], device=device, requires_grad=True)
    o = mode.module(model)(x)
    o.backward()
    assert_equal(names, ["Linear", "ReLU", "Linear"], clause="HOOK-6", what=f"modules seen by the seed's hooks, in call order ({mode})")
    assert_equal(features_in[0][0] is x, True, clause="HOOK-6", what="fc1's input seen by its hook is x")
    for index in (1, 2):
        assert_equal(features_in[index][0] is features_out[index - 1], True, clause="HOOK-6", what=f"child {index}'s input is child {index - 1}'s output")
    expected = [torch.tensor([[7.0, -13.0, 27.0, -29.0]]), torch.tensor([[7.0, 0.0, 27.0, 0.0]]), torch.tensor([[89.0]])]
    for index, (got, want) in enumerate(zip(features_out, expected)):
        assert_close(got, want, clause="HOOK-6", what=f"output of child {index} ({names[index]}) of the seed's model")
    assert_equal(features_out[2] is o, True, clause="HOOK-6", what="fc2's output seen by its hook is the model's output")


# ----------------------------------------------------------------------------- HOOK-7


def _map_outputs(output, fn):
    return tuple(fn(out) for out in output) if isinstance(output, tuple) else fn(output)


#: what a forward hook returns, given the output: source -> fn(output), None meaning "returns None"
OUTPUT_REPLACEMENTS = {
    "output * 2": lambda output: _map_outputs(output, lambda out: out * 2),
    "torch.zeros_like(output)": lambda output: _map_outputs(output, torch.zeros_like),
    "the string 'replaced'": lambda output: "replaced",
    "None": lambda output: None,
}


@pytest.mark.spec("HOOK-7")
@pytest.mark.parametrize("replacement", sorted(OUTPUT_REPLACEMENTS))
@given(data=st.data())
def test_forward_hook_return_value_replaces_the_output(device, mode, replacement, data):
    _new_program(mode)
    case = data.draw(st.sampled_from(MODULE_CASES), label="module")
    module = _module(case, device)
    returned_by_hook, seen_by_later_hook = [], []

    def replacing_hook(m, args, output):
        result = OUTPUT_REPLACEMENTS[replacement](output)
        returned_by_hook.append(result)
        return result

    module.register_forward_hook(replacing_hook)
    module.register_forward_hook(lambda m, args, output: seen_by_later_hook.append(output))
    args, kwargs = _draw_call(data, case, device, requires_grad=True)
    result = mode.module(module)(*args, **kwargs)
    what = f"`{case.source}` with a forward hook returning {replacement} ({mode})"
    if returned_by_hook[0] is None:
        for position, (got, direct) in enumerate(zip(_as_tuple(result), _as_tuple(module.forward(*args, **kwargs)))):
            assert_close(got, direct, clause="HOOK-7", what=f"output {position} of {what} vs module.forward(...)")
        assert_equal(seen_by_later_hook[0] is result, True, clause="HOOK-7", what=f"a later hook receives the unchanged output ({what})")
        return
    assert_equal(result is returned_by_hook[0], True, clause="HOOK-7", what=f"the call returns the hook's value ({what})")
    assert_equal(seen_by_later_hook[0] is returned_by_hook[0], True, clause="HOOK-7", what=f"a later forward hook receives the replaced output ({what})")


# ----------------------------------------------------------------------------- HOOK-8

#: what a forward pre-hook returns, given the positional arguments: source -> fn(args), None meaning "returns None"
INPUT_REPLACEMENTS = {
    "a tuple of the tensor inputs times -2": lambda args: tuple(a * -2 if _is_tensor(a) else a for a in args),
    "a tuple of new tensors (ones)": lambda args: tuple(torch.ones_like(a) if _is_tensor(a) else a for a in args),
    "a single tensor, args[0] + 1 (not a tuple)": lambda args: args[0] + 1,
    "None": lambda args: None,
}


@pytest.mark.spec("HOOK-8")
@pytest.mark.parametrize("replacement", sorted(INPUT_REPLACEMENTS))
@given(data=st.data())
def test_forward_pre_hook_sees_and_can_replace_the_inputs(device, mode, replacement, data):
    _new_program(mode)
    single = replacement.startswith("a single")
    case = data.draw(st.sampled_from(SINGLE_INPUT_CASES if single else MODULE_CASES), label="module")
    module = _module(case, device)
    seen_by_pre_hook, returned_by_pre_hook, seen_by_forward_hook = [], [], []

    def pre_hook(m, args):
        seen_by_pre_hook.append(args)
        returned_by_pre_hook.append(INPUT_REPLACEMENTS[replacement](args))
        return returned_by_pre_hook[-1]

    module.register_forward_pre_hook(pre_hook)
    module.register_forward_hook(lambda m, args, output: seen_by_forward_hook.append(args))
    args, kwargs = _draw_call(data, case, device, requires_grad=data.draw(st.booleans(), label="inputs require grad"))
    result = mode.module(module)(*args, **kwargs)
    what = f"`{case.source}` with a forward pre-hook returning {replacement} ({mode})"
    assert_equal(len(seen_by_pre_hook), 1, clause="HOOK-8", what=f"number of pre-hook calls ({what})")
    assert_equal(type(seen_by_pre_hook[0]), tuple, clause="HOOK-8", what=f"type of the args seen by the pre-hook ({what})")
    assert_equal(len(seen_by_pre_hook[0]), len(args), clause="HOOK-8", what=f"len(args) seen by the pre-hook: the positional arguments only ({what})")
    for position, (got, given_arg) in enumerate(zip(seen_by_pre_hook[0], args)):
        assert_equal(got is given_arg, True, clause="HOOK-8", what=f"args[{position}] seen by the pre-hook is the argument passed ({what})")
    returned = returned_by_pre_hook[0]
    forward_args = args if returned is None else _as_tuple(returned)
    assert_equal(len(seen_by_forward_hook[0]), len(forward_args), clause="HOOK-8", what=f"number of arguments forward received ({what})")
    for position, (got, want) in enumerate(zip(seen_by_forward_hook[0], forward_args)):
        assert_equal(got is want, True, clause="HOOK-8", what=f"argument {position} forward received (as seen by a forward hook) ({what})")
    for position, (got, direct) in enumerate(zip(_as_tuple(result), _as_tuple(module.forward(*forward_args, **kwargs)))):
        assert_close(got, direct, clause="HOOK-8", what=f"output {position} of {what} vs module.forward(*replaced arguments)")


# ----------------------------------------------------------------------------- HOOK-6, -8, -9: hooks registered after compiled calls

#: the module hooks registered after compiled calls, with the clause that says each is called on every call:
#: (clause, Module.register_* method)
LATE_MODULE_HOOKS = [
    pytest.param("HOOK-8", "register_forward_pre_hook", marks=pytest.mark.spec("HOOK-8"), id="forward pre-hook"),
    pytest.param("HOOK-6", "register_forward_hook", marks=pytest.mark.spec("HOOK-6"), id="forward hook"),
    pytest.param("HOOK-9", "register_full_backward_hook", marks=pytest.mark.spec("HOOK-9"), id="full backward hook"),
]
#: when the hook is registered: after a call of the module itself, or before the module's first call but after a
#: call of another module of its class (in a compiled mode: the same compiled code, called for another instance)
LATE_REGISTRATIONS = ["after a first call of the module", "after a call of another module of its class"]
TORCH_NN_CASES = tuple(case for case in MODULE_CASES if case.source.startswith("nn."))
USER_DEFINED_CASES = tuple(case for case in MODULE_CASES if not case.source.startswith("nn."))


def _check_hook_registered_after_compiled_calls(device, mode, clause: str, kind: str, registered: str, data, cases) -> None:
    __tracebackhide__ = True
    _new_program(mode)
    case = data.draw(st.sampled_from(cases), label="module")
    module = _module(case, device)
    compiled = mode.module(module)
    args, kwargs = _draw_call(data, case, device, requires_grad=True)

    def run_pass(call) -> None:  # one forward (through the compiled module) and backward
        sum(out.sum() for out in _as_tuple(call(*args, **kwargs))).backward()

    if registered == LATE_REGISTRATIONS[0]:
        run_pass(compiled)
    else:
        run_pass(mode.module(_module(case, device)))
    seen = []
    getattr(module, kind)(lambda hooked_module, *hook_args: seen.append(hooked_module))
    for call in range(2):
        seen.clear()
        run_pass(compiled)
        what = f"a {kind} hook registered {registered}, in forward and backward pass {call} of `{case.source}` ({mode})"
        assert_equal(len(seen), 1, clause=clause, what=f"number of calls of {what}")
        assert_equal(seen[0] is module, True, clause=clause, what=f"the module argument of {what} is the module")


@pytest.mark.parametrize(("clause", "kind"), LATE_MODULE_HOOKS)
@pytest.mark.parametrize("registered", LATE_REGISTRATIONS)
@given(data=st.data())
def test_module_hooks_registered_after_compiled_calls_on_torch_nn_modules(device, mode, clause, kind, registered, data):
    _check_hook_registered_after_compiled_calls(device, mode, clause, kind, registered, data, TORCH_NN_CASES)


@pytest.mark.parametrize(("clause", "kind"), LATE_MODULE_HOOKS)
@pytest.mark.parametrize("registered", LATE_REGISTRATIONS)
@given(data=st.data())
def test_module_hooks_registered_after_compiled_calls_on_user_defined_modules(device, mode, clause, kind, registered, data):
    _check_hook_registered_after_compiled_calls(device, mode, clause, kind, registered, data, USER_DEFINED_CASES)


# ----------------------------------------------------------------------------- HOOK-9, -10, -11


def _reference_gradients(module: nn.Module, args: tuple, kwargs: dict, weights: Sequence[torch.Tensor]) -> tuple[list, list]:
    """Gradients of the weighted loss with respect to each positional argument (None for non-tensors) and each parameter."""
    loss = _weighted_loss(_as_tuple(module(*args, **kwargs)), weights)
    tensor_args = [a for a in args if _is_tensor(a) and a.requires_grad]
    params = list(module.parameters())
    grads = torch.autograd.grad(loss, tensor_args + params, allow_unused=True)
    by_tensor = iter(grads[: len(tensor_args)])
    return [next(by_tensor) if _is_tensor(a) and a.requires_grad else None for a in args], list(grads[len(tensor_args) :])


def _draw_backward_call(data, case: ModuleCase, device: str, *, requires_grad: bool):
    """A module, a call's arguments, the loss weights and the reference gradients, all computed without hooks."""
    module = _module(case, device)
    args, kwargs = _draw_call(data, case, device, requires_grad=requires_grad)
    with torch.no_grad():
        weights = _draw_output_weights(data, _as_tuple(module(*args, **kwargs)), device)
    input_grads, param_grads = _reference_gradients(module, args, kwargs, weights)
    return module, args, kwargs, weights, input_grads, param_grads


@pytest.mark.spec("HOOK-9")
@pytest.mark.parametrize("case", MODULE_CASES, ids=repr)
@given(data=st.data())
def test_full_backward_hook_receives_input_and_output_gradients(device, mode, case, data):
    _new_program(mode)
    module, args, kwargs, weights, input_grads, _ = _draw_backward_call(data, case, device, requires_grad=True)
    seen = []
    module.register_full_backward_hook(lambda m, grad_input, grad_output: seen.append((m, grad_input, grad_output)))
    _weighted_loss(_as_tuple(mode.module(module)(*args, **kwargs)), weights).backward()
    what = f"`{case.source}`, loss sum((out_i * w_i).sum()) ({mode})"
    assert_equal(len(seen), 1, clause="HOOK-9", what=f"number of full backward hook calls in one backward pass ({what})")
    hooked_module, grad_input, grad_output = seen[0]
    assert_equal(hooked_module is module, True, clause="HOOK-9", what=f"the hook's module argument is the module ({what})")
    assert_equal(type(grad_output), tuple, clause="HOOK-9", what=f"type of grad_output ({what})")
    assert_equal(len(grad_output), len(weights), clause="HOOK-9", what=f"len(grad_output): one entry per output ({what})")
    for position, (got, weight) in enumerate(zip(grad_output, weights)):
        assert_close(got, weight, clause="HOOK-9", what=f"grad_output[{position}] vs the gradient of the loss with respect to output {position} ({what})")
    assert_equal(type(grad_input), tuple, clause="HOOK-9", what=f"type of grad_input ({what})")
    assert_equal(len(grad_input), len(args), clause="HOOK-9", what=f"len(grad_input): one entry per positional argument ({what})")
    for position, (got, want, arg) in enumerate(zip(grad_input, input_grads, args)):
        if not _is_tensor(arg):
            assert_equal(got, None, clause="HOOK-9", what=f"grad_input[{position}] for the non-tensor argument {arg!r} ({what})")
        else:
            assert_close(got, want, clause="HOOK-9", what=f"grad_input[{position}] vs torch.autograd.grad ({what})")


#: modules with two tensor inputs, for a call where only some of them require grad
TWO_INPUT_CASES = tuple(case for case in MODULE_CASES if len(case.input_shapes(1)) == 2)


@pytest.mark.spec("HOOK-9")
@pytest.mark.parametrize("case", TWO_INPUT_CASES, ids=repr)
@pytest.mark.parametrize("not_requiring_grad", [0, 1], ids=["first input does not require grad", "second input does not require grad"])
@given(data=st.data())
def test_full_backward_hook_with_an_input_not_requiring_grad(device, mode, case, not_requiring_grad, data):
    _new_program(mode)
    module = _module(case, device)
    args, kwargs = _draw_call(data, case, device, requires_grad=True)
    args = tuple(a.detach() if position == not_requiring_grad else a for position, a in enumerate(args))
    with torch.no_grad():
        weights = _draw_output_weights(data, _as_tuple(module(*args, **kwargs)), device)
    input_grads, _ = _reference_gradients(module, args, kwargs, weights)
    seen = []
    module.register_full_backward_hook(lambda m, grad_input, grad_output: seen.append((grad_input, grad_output)))
    what = f"`{case.source}` whose input {not_requiring_grad} does not require grad ({mode})"
    with assert_succeeds(clause="HOOK-9", what=f"the forward and backward pass of {what}, with a full backward hook"):
        _weighted_loss(_as_tuple(mode.module(module)(*args, **kwargs)), weights).backward()
    assert_equal(len(seen), 1, clause="HOOK-9", what=f"number of full backward hook calls in one backward pass ({what})")
    grad_input, grad_output = seen[0]
    assert_equal(len(grad_input), len(args), clause="HOOK-9", what=f"len(grad_input) ({what})")
    for position, (got, want, arg) in enumerate(zip(grad_input, input_grads, args)):
        if _is_tensor(arg) and arg.requires_grad:
            assert_close(got, want, clause="HOOK-9", what=f"grad_input[{position}] vs torch.autograd.grad ({what})")
    for position, (got, weight) in enumerate(zip(grad_output, weights)):
        assert_close(got, weight, clause="HOOK-9", what=f"grad_output[{position}] ({what})")


@pytest.mark.spec("HOOK-9")
def test_seed_full_backward_hooks_on_named_children(device, mode):
    model = _SeedModel().to(device)
    names = {module: name for name, module in model.named_children()}
    seen = {}

    def hook_fn_backward(module, grad_input, grad_output):  # the seed's hook, collecting instead of printing
        seen[names[module]] = (grad_input, grad_output)

    for module in names:
        module.register_full_backward_hook(hook_fn_backward)
    x = torch.tensor([[1.0, 1.0, 1.0]], device=device, requires_grad=True)
    mode.module(model)(x).backward()
    # o = fc2(relu(fc1(x))) = 89; do/d(relu out) = fc2.weight; relu passes entries 0 and 2 (fc1 out = [7, -13, 27, -29])
    expected = {
        "fc2": ([[1.0, 2.0, 3.0, 4.0]], [[1.0]]),
        "relu1": ([[1.0, 0.0, 3.0, 0.0]], [[1.0, 2.0, 3.0, 4.0]]),
        "fc1": ([[22.0, 26.0, 30.0]], [[1.0, 0.0, 3.0, 0.0]]),
    }
    for name, (grad_in, grad_out) in expected.items():
        if name not in seen:
            fail("HOOK-9", f"the full backward hook of the seed's {name} was not called")
        got_in, got_out = seen[name]
        assert_close(got_in[0], torch.tensor(grad_in), clause="HOOK-9", what=f"grad_input of the seed's {name}")
        assert_close(got_out[0], torch.tensor(grad_out), clause="HOOK-9", what=f"grad_output of the seed's {name}")
    assert_close(x.grad, torch.tensor([[22.0, 26.0, 30.0]]), clause="HOOK-9", what="x.grad of the seed's model (fc1's grad_input)")


#: what a full backward hook returns, given grad_input: source -> fn(grad_input), None meaning "returns None"
GRAD_INPUT_REPLACEMENTS = {
    "grad_input * 3": lambda grad_input: tuple(None if g is None else g * 3 for g in grad_input),
    "torch.zeros_like(g) for each g": lambda grad_input: tuple(None if g is None else torch.zeros_like(g) for g in grad_input),
    "None": lambda grad_input: None,
}


#: what the module's tensor inputs are: the drawn leaves x themselves, or results computed from them upstream
HOOKED_MODULE_INPUTS = {
    "leaves x": lambda x: x,
    "non-leaves torch.sin(x)": torch.sin,
}


@pytest.mark.spec("HOOK-10")
@pytest.mark.parametrize("inputs", sorted(HOOKED_MODULE_INPUTS))
@pytest.mark.parametrize("replacement", sorted(GRAD_INPUT_REPLACEMENTS))
@given(data=st.data())
def test_full_backward_hook_return_value_replaces_grad_input(device, mode, replacement, inputs, data):
    _new_program(mode)
    case = data.draw(st.sampled_from(_backward_hooked_cases(MODULE_CASES, mode)), label="module")
    module = _module(case, device)
    leaves, kwargs = _draw_call(data, case, device, requires_grad=True)
    args = tuple(HOOKED_MODULE_INPUTS[inputs](x) if _is_tensor(x) else x for x in leaves)
    with torch.no_grad():
        weights = _draw_output_weights(data, _as_tuple(module(*args, **kwargs)), device)
    input_grads, param_grads = _reference_gradients(module, args, kwargs, weights)
    replaced = GRAD_INPUT_REPLACEMENTS[replacement](tuple(input_grads))
    if replaced is None:
        replaced = tuple(input_grads)
    # the replaced gradients flow on through the rest of the backward pass: upstream of the inputs, to the leaves
    expected = [
        torch.autograd.grad(arg, x, grad_outputs=want, retain_graph=True)[0] if _is_tensor(arg) else None
        for x, arg, want in zip(leaves, args, replaced)
    ]
    module.register_full_backward_hook(lambda m, grad_input, grad_output: GRAD_INPUT_REPLACEMENTS[replacement](grad_input))
    _weighted_loss(_as_tuple(mode.module(module)(*args, **kwargs)), weights).backward()
    what = f"`{case.source}` on {inputs}, with a full backward hook returning {replacement} ({mode})"
    for position, (x, want) in enumerate(zip(leaves, expected)):
        if _is_tensor(x):
            assert_close(x.grad, want, clause="HOOK-10", what=f".grad of the leaf x behind positional argument {position} ({what})")
    for (name, param), want in zip(module.named_parameters(), param_grads):
        assert_close(param.grad, want, clause="HOOK-10", what=f"{name}.grad, which the hook must not change ({what})")


@pytest.mark.spec("HOOK-10")
@given(data=st.data())
def test_full_backward_hook_returning_the_wrong_number_of_gradients_raises(device, mode, data):
    _new_program(mode)
    case = data.draw(st.sampled_from(_backward_hooked_cases(MODULE_CASES, mode)), label="module")
    module = _module(case, device)
    module.register_full_backward_hook(lambda m, grad_input, grad_output: grad_input + (None,))
    args, kwargs = _draw_call(data, case, device, requires_grad=True)
    loss = sum(out.sum() for out in _as_tuple(mode.module(module)(*args, **kwargs)))
    with assert_raises(RuntimeError, clause="HOOK-10", what=f"backward through `{case.source}` whose full backward hook returns len(grad_input) + 1 entries ({mode})"):
        loss.backward()


@pytest.mark.spec("HOOK-11")
@pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")
@given(data=st.data())
def test_full_backward_hook_fires_when_no_input_requires_grad(device, mode, data):
    _new_program(mode)
    case = data.draw(st.sampled_from(_backward_hooked_cases(PARAMETER_CASES, mode)), label="module")
    module, args, kwargs, weights, _, param_grads = _draw_backward_call(data, case, device, requires_grad=False)
    seen = []
    module.register_full_backward_hook(lambda m, grad_input, grad_output: seen.append((grad_input, grad_output)))
    _weighted_loss(_as_tuple(mode.module(module)(*args, **kwargs)), weights).backward()
    what = f"`{case.source}` with inputs that do not require grad ({mode})"
    assert_equal(len(seen), 1, clause="HOOK-11", what=f"number of full backward hook calls in one backward pass ({what})")
    grad_input, grad_output = seen[0]
    assert_equal(grad_input, (None,) * len(args), clause="HOOK-11", what=f"grad_input ({what})")
    assert_equal(len(grad_output), len(weights), clause="HOOK-11", what=f"len(grad_output) ({what})")
    for position, (got, weight) in enumerate(zip(grad_output, weights)):
        assert_close(got, weight, clause="HOOK-11", what=f"grad_output[{position}] ({what})")
    for (name, param), want in zip(module.named_parameters(), param_grads):
        assert_close(param.grad, want, clause="HOOK-11", what=f"{name}.grad ({what})")


# ----------------------------------------------------------------------------- HOOK-12, -13: register_backward_hook (deprecated)

SINGLE_OPERATION_MODULES = {
    "nn.ReLU()": nn.ReLU,
    "nn.Sigmoid()": nn.Sigmoid,
    "nn.Tanh()": nn.Tanh,
    "nn.ELU()": nn.ELU,
    "nn.LeakyReLU(0.1)": lambda: nn.LeakyReLU(0.1),
    "nn.GELU()": nn.GELU,
    "nn.Softplus()": nn.Softplus,
    "nn.Softmax(dim=-1)": lambda: nn.Softmax(dim=-1),
}


def _warnings_of(action: Callable[[], Any]) -> tuple[Any, list[str]]:
    """Run action, recording every warning (none filtered out): its result and "Category: message" of each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = action()
    return result, [f"{w.category.__name__}: {w.message}" for w in caught]


#: The category of register_backward_hook's deprecation warning, by the clause in force:
#: FutureWarning from torch 2.4 (HOOK-13), UserWarning before (HOOK-14). One test per clause,
#: and the clause's version range (not the test) decides which one runs.
DEPRECATION_WARNING_CLAUSES = [
    pytest.param("HOOK-13", FutureWarning, marks=pytest.mark.spec("HOOK-13"), id="HOOK-13-FutureWarning"),
    pytest.param("HOOK-14", UserWarning, marks=pytest.mark.spec("HOOK-14"), id="HOOK-14-UserWarning"),
]
#: The message both clauses name; the seed's silent ReLU test ignores it whatever its category.
NON_FULL_HOOK_MESSAGE = "Using a non-full backward hook"


def _deprecation_warnings(caught: Sequence[str], category: type[Warning]) -> list[str]:
    """The warnings HOOK-13/14 require: ``category``, saying it is deprecated and naming the replacement."""
    prefix = f"{category.__name__}: "
    return [w for w in caught if w.startswith(prefix) and "deprecated" in w and "register_full_backward_hook" in w]


@pytest.mark.spec("HOOK-12")
@given(data=st.data())
def test_deprecated_backward_hook_is_exact_on_a_single_operation_module(device, mode, data):
    _new_program(mode)
    name = data.draw(st.sampled_from(sorted(SINGLE_OPERATION_MODULES)), label="module")
    graph = data.draw(graphs(device=device, dtype=torch.float64, requires_grad=True), label="graph computing the input")
    intermediate = graph.output()
    assume(intermediate.grad_fn is not None)  # the clause's precondition; e.g. torch.flatten(t0) of a 1-d t0 is t0 itself
    module = SINGLE_OPERATION_MODULES[name]().to(device)
    reference = module(intermediate)
    weight = data.draw(tensors(dtype=torch.float64, shape=tuple(reference.shape), device=device), label="loss weight")
    (expected,) = torch.autograd.grad((reference * weight).sum(), intermediate, retain_graph=True)
    seen = []
    what = f"`{name}` applied to the intermediate {graph.name(graph.n_values - 1)}, with a register_backward_hook hook ({mode})\n{graph!r}\n"
    _, at_registration = _warnings_of(lambda: module.register_backward_hook(lambda m, grad_input, grad_output: seen.append((grad_input, grad_output))))
    output, at_call = _warnings_of(lambda: mode.module(module)(intermediate))
    assert_equal(at_registration + at_call, [], clause="HOOK-12", what=f"warnings from registering and calling {what}")
    (output * weight).sum().backward()
    assert_equal(len(seen), 1, clause="HOOK-12", what=f"number of hook calls in one backward pass ({what})")
    grad_input, grad_output = seen[0]
    assert_equal((len(grad_input), len(grad_output)), (1, 1), clause="HOOK-12", what=f"(len(grad_input), len(grad_output)) ({what})")
    assert_close(grad_input[0], expected, clause="HOOK-12", what=f"grad_input[0] vs torch.autograd.grad ({what})")
    assert_close(grad_output[0], weight, clause="HOOK-12", what=f"grad_output[0] vs the gradient with respect to the output ({what})")


@pytest.mark.parametrize(("clause", "category"), DEPRECATION_WARNING_CLAUSES)
@given(data=st.data())
def test_deprecated_backward_hook_on_a_multi_operation_module_warns_on_every_call(device, mode, clause, category, data):
    _new_program(mode)
    case = data.draw(st.sampled_from(_backward_hooked_cases(MULTI_OPERATION_CASES, mode)), label="module")
    module = _module(case, device)
    compiled = mode.module(module)
    _, at_registration = _warnings_of(lambda: module.register_backward_hook(lambda m, grad_input, grad_output: None))
    assert_equal(at_registration, [], clause=clause, what=f"warnings from registering a register_backward_hook hook on the module of `{case.source}`")
    for call in range(data.draw(st.integers(1, 2), label="number of calls")):
        # the output must have a grad_fn: through the parameters, or else through the inputs
        requires_grad = data.draw(st.booleans(), label="inputs require grad") if case.has_parameters else True
        args, kwargs = _draw_call(data, case, device, requires_grad=requires_grad)
        # in a compiled mode, a module without parameters is called on intermediates by the next test only
        if (case.has_parameters or not mode.compiled) and data.draw(st.booleans(), label="inputs are intermediates (x * 1.0)"):
            args = tuple(a * 1.0 if _is_tensor(a) else a for a in args)
        _, caught = _warnings_of(lambda: compiled(*args, **kwargs))
        if not _deprecation_warnings(caught, category):
            fail(clause, f"call {call} of `{case.source}` ({mode}) with a register_backward_hook hook should emit a {category.__name__} saying this is deprecated and naming register_full_backward_hook; warnings: {caught}")


#: multi-operation modules without parameters: several autograd operations on the inputs alone
PARAMETERLESS_MULTI_OPERATION_CASES = tuple(case for case in MULTI_OPERATION_CASES if not case.has_parameters)


@pytest.mark.parametrize(("clause", "category"), DEPRECATION_WARNING_CLAUSES)
@given(data=st.data())
def test_deprecated_backward_hook_on_a_parameterless_module_warns_on_calls_on_intermediates(device, mode, clause, category, data):
    # Compiled with aot_eager, the module's forward is one autograd node, whose inputs are the intermediates' own
    # nodes: the check that decides the warning takes it for a single operation (on every draw).
    _new_program(mode)
    case = data.draw(st.sampled_from(PARAMETERLESS_MULTI_OPERATION_CASES), label="module")
    module = _module(case, device)
    compiled = mode.module(module)
    module.register_backward_hook(lambda m, grad_input, grad_output: None)
    for call in range(2):
        args, kwargs = _draw_call(data, case, device, requires_grad=True)
        args = tuple(a * 1.0 if _is_tensor(a) else a for a in args)
        _, caught = _warnings_of(lambda: compiled(*args, **kwargs))
        if not _deprecation_warnings(caught, category):
            fail(clause, f"call {call} of `{case.source}` on intermediates (x * 1.0) ({mode}) with a register_backward_hook hook should emit a {category.__name__} saying this is deprecated and naming register_full_backward_hook; warnings: {caught}")


def _seed_model_with_deprecated_hooks(device: str) -> tuple[_SeedModel, dict]:
    """The seed's model with its hook_fn_backward registered by register_backward_hook on every child."""
    model = _SeedModel().to(device)
    names = {module: name for name, module in model.named_children()}
    seen = {}

    def hook_fn_backward(module, grad_input, grad_output):  # the seed's hook, collecting instead of printing
        seen[names[module]] = (grad_input, grad_output)

    for module in names:
        module.register_backward_hook(hook_fn_backward)
    return model, seen


@pytest.mark.spec("HOOK-12")
def test_seed_deprecated_backward_hook_on_relu_is_exact_and_silent(device, mode):
    model, seen = _seed_model_with_deprecated_hooks(device)
    x = torch.tensor([[1.0, 1.0, 1.0]], device=device, requires_grad=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=NON_FULL_HOOK_MESSAGE)  # from the nn.Linear children: HOOK-13/14
        hidden = mode.module(model.fc1)(x)
    activated, relu1_warnings = _warnings_of(lambda: mode.module(model.relu1)(hidden))
    assert_equal(relu1_warnings, [], clause="HOOK-12", what="warnings from calling the seed's relu1 on fc1's output with a register_backward_hook hook")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=NON_FULL_HOOK_MESSAGE)
        o = mode.module(model.fc2)(activated)
    o.backward()
    if "relu1" not in seen:
        fail("HOOK-12", "the register_backward_hook hook of the seed's relu1 was not called")
    grad_input, grad_output = seen["relu1"]
    assert_close(grad_input[0], torch.tensor([[1.0, 0.0, 3.0, 0.0]]), clause="HOOK-12", what="grad_input of the seed's relu1")
    assert_close(grad_output[0], torch.tensor([[1.0, 2.0, 3.0, 4.0]]), clause="HOOK-12", what="grad_output of the seed's relu1")


@pytest.mark.parametrize(("clause", "category"), DEPRECATION_WARNING_CLAUSES)
def test_seed_deprecated_backward_hooks_warn_on_the_linear_layers(device, mode, clause, category):
    model, _ = _seed_model_with_deprecated_hooks(device)
    inputs = {"fc1": torch.tensor([[1.0, 1.0, 1.0]], device=device, requires_grad=True), "fc2": torch.tensor([[7.0, 0.0, 27.0, 0.0]], device=device)}
    for name, layer_input in inputs.items():
        _, caught = _warnings_of(lambda: mode.module(getattr(model, name))(layer_input))
        if not _deprecation_warnings(caught, category):
            fail(clause, f"calling the seed's {name} (nn.Linear) with a register_backward_hook hook should emit the {category.__name__}; warnings: {caught}")
