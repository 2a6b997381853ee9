"""Higher-order gradients: create_graph=True, Hessian-vector products, hooks, gradgradcheck.  Spec: specs/higher_order.md.

In a compiled mode the user program (the function whose gradients are taken twice) is compiled; the backward
passes run through its outputs as a user's would.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, assert_requires_grad, assert_succeeds, fail
from conformance.testlib.forms import BACKWARD_PASSES
from conformance.testlib.graphs import graphs
from conformance.testlib.modes import EAGER, Mode, keeping_graphs_allowed
from conformance.testlib.ops import KINDS, OPS
from conformance.testlib.strategies import REAL_DTYPES, broadcastable_shapes, shapes, tensors

SMALL = dict(max_dims=2, max_side=3)


def _gradients(first: str, y: torch.Tensor, leaves: list, **keywords) -> list:
    """Each leaf's gradient of ``y`` by the pass ``first`` (a BACKWARD_PASSES name): the returned ones, or the
    ``.grad`` it filled (then reset, breaking the parameter <-> gradient cycle create_graph makes)."""
    for leaf in leaves:
        leaf.grad = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # backward(create_graph=True) warns about a reference cycle
        returned = BACKWARD_PASSES[first](y, leaves, **keywords)
    gradients = list(returned) if returned is not None else [leaf.grad for leaf in leaves]
    for leaf in leaves:
        leaf.grad = None
    return gradients


def _squared_output(program, mode):
    """The user program: the last value of ``program`` squared and summed (``pow`` saves its input, so the
    gradient depends on the leaves), compiled in a compiled ``mode``."""

    def loss(*leaves):
        return (program(*leaves)[-1] ** 2).sum()

    return mode.compile(loss)


# --------------------------------------------------------------------------------------------- HIGHER-1


@pytest.mark.spec("HIGHER-1")
@given(data=st.data())
def test_gradients_have_a_graph_only_with_create_graph(device, mode, data):
    first = data.draw(st.sampled_from(sorted(BACKWARD_PASSES)), label="pass")
    create_graph = data.draw(st.booleans(), label="create_graph")
    with keeping_graphs_allowed(mode):
        graph = data.draw(graphs(device=device, requires_grad=True, mode=mode, base_shape=shapes(min_side=1, **SMALL), max_steps=4), label="graph")
        y = _squared_output(graph.program, mode)(*graph.leaves)
        keywords = {"create_graph": True} if create_graph else {}
        gradients = _gradients(first, y, graph.leaves, **keywords)
    spelled = f"`{first}` of (t_last ** 2).sum()" + (" with create_graph=True" if create_graph else " without create_graph")
    for index, grad in enumerate(gradients):
        if index not in graph.leaves_behind(graph.n_values - 1):
            continue  # no gradient: the output was not computed from this leaf
        what = f"the gradient of t{index} from {spelled} ({mode})\n{graph!r}\n"
        if grad is None:
            fail("HIGHER-1", f"{what}: expected a gradient, got None")
        assert_requires_grad(grad, create_graph, clause="HIGHER-1", what=what)
        assert_equal(grad.grad_fn is not None, create_graph, clause="HIGHER-1", what=f"whether {what} has a grad_fn")


# --------------------------------------------------------------------------------------------- HIGHER-2


def _polynomial(x: torch.Tensor, a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """f(x) = ½ uᵀAu + Σ cᵢuᵢ³ with u the flattened x: the user program."""
    u = x.reshape(-1)
    return 0.5 * (u @ a @ u) + (c * u ** 3).sum()


#: the second pass, differentiating the gradient ``g`` of ``x`` with the vector ``v``: returns H v
SECOND_PASSES = {
    "torch.autograd.grad(g, x, grad_outputs=v)": lambda g, x, v: torch.autograd.grad(g, x, grad_outputs=v)[0],
    "torch.autograd.grad((g * v).sum(), x)": lambda g, x, v: torch.autograd.grad((g * v).sum(), x)[0],
    "(g * v).sum().backward()": lambda g, x, v: _backward_into_grad((g * v).sum(), x),
    "g.backward(v)": lambda g, x, v: _backward_into_grad(g, x, v),
}


def _backward_into_grad(y: torch.Tensor, x: torch.Tensor, gradient: torch.Tensor | None = None) -> torch.Tensor:
    x.grad = None
    y.backward(gradient)
    grad, x.grad = x.grad, None
    return grad


@pytest.mark.spec("HIGHER-2")
@given(data=st.data())
def test_double_backward_is_the_hessian_vector_product(device, mode, data):
    dtype = data.draw(st.sampled_from(REAL_DTYPES), label="dtype")
    x = data.draw(tensors(dtype=dtype, shape=shapes(min_dims=1, min_side=1, **SMALL), device=device, requires_grad=True), label="x")
    n = x.numel()
    a = data.draw(tensors(dtype=dtype, shape=(n, n), device=device), label="A")
    c = data.draw(tensors(dtype=dtype, shape=(n,), device=device), label="c")
    v = data.draw(tensors(dtype=dtype, shape=tuple(x.shape), device=device), label="v")
    first = data.draw(st.sampled_from(sorted(BACKWARD_PASSES)), label="first pass (create_graph=True)")
    second = data.draw(st.sampled_from(sorted(SECOND_PASSES)), label="second pass")
    with keeping_graphs_allowed(mode):
        (g,) = _gradients(first, mode.run(_polynomial, x, a, c), [x], create_graph=True)
        what = f"`{second}` after `{first}` with create_graph=True on f(x) = ½ uᵀAu + Σ cᵢuᵢ³ ({mode})"
        with assert_succeeds(clause="HIGHER-2", what=what):
            hv = SECOND_PASSES[second](g, x, v)
    u, w = x.detach().reshape(-1).double().cpu(), v.reshape(-1).double().cpu()
    a64, c64 = a.double().cpu(), c.double().cpu()
    expected = (0.5 * (a64 + a64.T) @ w + 6 * c64 * u * w).reshape(x.shape).to(dtype)
    assert_close(hv, expected, clause="HIGHER-2", what=f"{what}: H v = ½(A + Aᵀ)v + 6 c⊙u⊙v", rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------------------------- HIGHER-3


def _scaled(x: torch.Tensor, k: float) -> torch.Tensor:
    """x's value, with derivative k with respect to x (what a hook returning grad * k makes of every pass)."""
    return x + (k - 1) * (x - x.detach())


@pytest.mark.spec("HIGHER-3")
@given(data=st.data())
def test_double_backward_goes_through_a_tensor_hook(device, mode, data):
    with keeping_graphs_allowed(mode):
        graph = data.draw(graphs(device=device, requires_grad=True, dtype=torch.float64, mode=mode, base_shape=shapes(min_side=1, **SMALL), max_steps=4), label="graph")
        used = sorted(graph.leaves_behind(graph.n_values - 1))
        hooked = data.draw(st.sampled_from(used), label="hooked leaf")
        k = data.draw(st.sampled_from([-1.0, 0.5, 2.0, 3.0]), label="k")
        form = data.draw(st.sampled_from(["grad * k", "torch.mul(grad, k)", "k * grad"]), label="hook returns")
        first = data.draw(st.sampled_from(sorted(BACKWARD_PASSES)), label="first pass (create_graph=True)")
        vectors = [data.draw(tensors(dtype=torch.float64, shape=tuple(leaf.shape), device=device), label=f"v{i}") for i, leaf in enumerate(graph.leaves)]
        leaves = [graph.leaves[i] for i in used]
        vs = [vectors[i] for i in used]
        hook = {"grad * k": lambda grad: grad * k, "torch.mul(grad, k)": lambda grad: torch.mul(grad, k), "k * grad": lambda grad: k * grad}[form]

        handle = graph.leaves[hooked].register_hook(hook)
        try:
            got_first = _gradients(first, _squared_output(graph.program, mode)(*graph.leaves), leaves, create_graph=True)
            what = f"the second-order pass (grad of Σ gᵢ·vᵢ) after `{first}` with create_graph=True and a hook returning `{form}` (k={k}) on t{hooked} ({mode})\n{graph!r}\n"
            with assert_succeeds(clause="HIGHER-3", what=what):
                got_second = torch.autograd.grad(sum((g * v).sum() for g, v in zip(got_first, vs)), leaves, allow_unused=True)
        finally:
            handle.remove()

        # the reference (after the pass under test, without the hook): the program run op by op, the hooked
        # leaf replaced by one whose derivative is k
        def reference_loss(*values):
            values = [_scaled(value, k) if i == hooked else value for i, value in enumerate(values)]
            return (graph.program(*values)[-1] ** 2).sum()

        expected_first = _gradients("torch.autograd.grad(y, leaves)", reference_loss(*graph.leaves), leaves, create_graph=True)
        expected_second = torch.autograd.grad(sum((g * v).sum() for g, v in zip(expected_first, vs)), leaves, allow_unused=True)
    for index, got, want in zip(used, got_first, expected_first):
        assert_close(got, want, clause="HIGHER-3", what=f"first-order gradient of t{index} with the hook `{form}` (k={k}) on t{hooked} ({mode})")
    for index, got, want in zip(used, got_second, expected_second):
        if want is None:
            want = torch.zeros_like(graph.leaves[index])
        if got is None:
            got = torch.zeros_like(graph.leaves[index])
        assert_close(got, want, clause="HIGHER-3", what=f"second-order gradient of t{index} with the hook `{form}` (k={k}) on t{hooked}: k applied to the hooked leaf's gradient in both passes ({mode})")


# --------------------------------------------------------------------------------------------- HIGHER-4


def _module_cases(shape: tuple, device) -> dict:
    """module source -> (module, loss from the module's output and the input ``x`` of ``shape``)."""
    n = shape[-1]
    target = torch.linspace(-1.0, 1.0, n * len(shape), dtype=torch.float64, device=device)[-n:].expand(shape)
    linear = torch.nn.Linear(n, n, dtype=torch.float64, device=device)
    with torch.no_grad():
        linear.weight.copy_(torch.linspace(-1.0, 1.0, n * n, dtype=torch.float64).reshape(n, n))
        linear.bias.fill_(0.25)
    return {
        "nn.MSELoss()(x, target)": (torch.nn.MSELoss(), lambda module, x: module(x, target)),
        "nn.Tanh()": (torch.nn.Tanh(), lambda module, x: (module(x) ** 2).sum()),
        "nn.Softmax(dim=-1)": (torch.nn.Softmax(dim=-1), lambda module, x: (module(x) * target).sum()),
        "nn.Sequential(nn.Linear(n, n), nn.Sigmoid())": (torch.nn.Sequential(linear, torch.nn.Sigmoid()), lambda module, x: (module(x) ** 2).sum()),
    }


@pytest.mark.spec("HIGHER-4")
@given(data=st.data())
def test_double_backward_through_a_full_backward_hook(device, mode, data):
    """pytorch#88312: with torch 1.13.0 the second pass raised "Module backward hook for grad_input is called
    before the grad_output one"."""
    x = data.draw(tensors(dtype=torch.float64, shape=shapes(min_dims=1, max_dims=2, min_side=1, max_side=3), device=device, requires_grad=True), label="x")
    cases = _module_cases(tuple(x.shape), device)
    source = data.draw(st.sampled_from(sorted(cases)), label="module")
    first = data.draw(st.sampled_from(sorted(BACKWARD_PASSES)), label="first pass (create_graph=True)")
    v = data.draw(tensors(dtype=torch.float64, shape=tuple(x.shape), device=device), label="v")
    module, loss = cases[source]
    calls = []
    handle = module.register_full_backward_hook(lambda m, grad_input, grad_output: calls.append(len(grad_output)))
    with keeping_graphs_allowed(mode):
        compiled = mode.module(module)
        (g,) = _gradients(first, loss(compiled, x), [x], create_graph=True)
        assert_equal(len(calls) >= 1, True, clause="HIGHER-4", what=f"whether the full backward hook of `{source}` ran in the first pass `{first}` with create_graph=True ({mode})")
        what = f"differentiating x's gradient (from `{first}` with create_graph=True) again through `{source}` with a full backward hook ({mode})"
        with assert_succeeds(clause="HIGHER-4", what=what):
            (got,) = torch.autograd.grad((g * v).sum(), x)
    handle.remove()
    # the reference (after the pass under test): the module without the hook, op by op
    (g,) = _gradients("torch.autograd.grad(y, leaves)", loss(module, x), [x], create_graph=True)
    (expected,) = torch.autograd.grad((g * v).sum(), x)
    assert_close(got, expected, clause="HIGHER-4", what=f"{what}: the second-order gradient, as without the hook")


# --------------------------------------------------------------------------------------------- HIGHER-5


@st.composite
def _smooth_points(draw, shape, device, label, shift=0.0):
    """float64 values of magnitude in [0.2, 0.8] or [1.2, 1.8] (each moved up by ``shift``), random signs: away
    from the kinks of the registry's ops (abs, relu at 0; clamp at ±1) and from small denominators.  The second
    operand of a binary op is drawn with ``shift=0.05``: never equal to the first (maximum's kink) even when
    hypothesis draws both from the same seeds."""
    magnitude = draw(tensors(dtype=torch.float64, shape=shape, low=0.2 + shift, high=0.8 + shift), label=f"{label} magnitude")
    beyond_one = draw(tensors(dtype=torch.float64, shape=shape, low=-1.0, high=1.0), label=f"{label} beyond 1")
    sign = draw(tensors(dtype=torch.float64, shape=shape, low=-1.0, high=1.0), label=f"{label} sign")
    values = (magnitude + (beyond_one > 0).double()) * torch.where(sign > 0, 1.0, -1.0).double()
    return values.to(device).requires_grad_()


@pytest.mark.spec("HIGHER-5")
@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_gradgradcheck_passes_on_the_registry(device, mode, kind, data):
    shape = data.draw(shapes(min_dims=1, max_dims=2, min_side=1, max_side=3), label="shape")
    probe = torch.zeros(shape, dtype=torch.float64)
    candidates = [op for op in OPS if op.kind == kind and op.applicable(probe) and (op.compiles_whole or not mode.compiled)]
    op = data.draw(st.sampled_from(candidates), label="op")
    form = data.draw(st.sampled_from(op.forms), label="form")
    a = data.draw(_smooth_points(shape, device, "a"), label="a")
    inputs = (a,)
    if op.arity == 2:
        broadcasting = op.partner.__name__ == "_broadcastable"  # the others want b of a's shape
        b_shape = data.draw(broadcastable_shapes(tuple(shape)), label="b shape") if broadcasting else tuple(shape)
        inputs += (data.draw(_smooth_points(b_shape, device, "b", shift=0.05), label="b"),)
    what = f"torch.autograd.gradgradcheck of `{form.source(*'ab'[: op.arity])}` at float64 {tuple(shape)} ({mode})"
    with assert_succeeds(clause="HIGHER-5", what=what):
        torch.autograd.gradgradcheck(mode.compile(form.fn), inputs)


# --------------------------------------------------------------------------------------------- HIGHER-6


@pytest.mark.spec("HIGHER-6")
@given(data=st.data())
def test_grad_does_not_call_its_inputs_hooks_before_2_0(device, mode, data):
    """The pre-2.0 side of HIGHER-3 (pytorch#35802, changed by PR 85849): the hook is counted, so every example can
    fail whatever the gradient's value."""
    graph = data.draw(graphs(device=device, requires_grad=True, dtype=torch.float64, mode=mode, base_shape=shapes(min_side=1, **SMALL), max_steps=4), label="graph")
    used = sorted(graph.leaves_behind(graph.n_values - 1))
    hooked = data.draw(st.sampled_from(used), label="hooked leaf")
    k = data.draw(st.sampled_from([-1.0, 0.5, 3.0]), label="k")
    create_graph = data.draw(st.booleans(), label="create_graph")
    leaves = [graph.leaves[i] for i in used]
    loss = _squared_output(graph.program, mode)
    expected = _gradients("torch.autograd.grad(y, leaves)", loss(*graph.leaves), leaves)
    calls = []
    handle = graph.leaves[hooked].register_hook(lambda grad: calls.append(1) or grad * k)
    try:
        got = _gradients("torch.autograd.grad(y, leaves)", loss(*graph.leaves), leaves, create_graph=create_graph)
    finally:
        handle.remove()
    what = f"torch.autograd.grad(y, leaves, create_graph={create_graph}) with a hook returning `grad * {k}` on input t{hooked} (torch < 2.0, {mode})\n{graph!r}\n"
    assert_equal(len(calls), 0, clause="HIGHER-6", what=f"calls of the hook on an input of {what}")
    for index, g, want in zip(used, got, expected):
        assert_close(g.detach(), want, clause="HIGHER-6", what=f"the unhooked gradient of t{index} from {what}")
