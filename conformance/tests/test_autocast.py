"""Autocast and gradients.  Spec: specs/autocast.md.

Every test runs on every device: on the emulated device ``emu`` autocast runs the kernels the emulator
registers for its autocast key (the op lists torch keeps for backends, as CUDA's).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from conformance.testlib.assertions import assert_close, assert_equal, assert_requires_grad, fail
from conformance.testlib.strategies import tensors

LOW = torch.bfloat16

#: ops on autocast's lower-precision list for the CPU and CUDA, as f(a, b) with a (n, k) and b (m, k): each gives (n, m)
AUTOCAST_OPS = {
    "a @ b.mT": lambda a, b: a @ b.mT,
    "torch.matmul(a, b.mT)": lambda a, b: torch.matmul(a, b.mT),
    "a.matmul(b.mT)": lambda a, b: a.matmul(b.mT),
    "torch.mm(a, b.t())": lambda a, b: torch.mm(a, b.t()),
    "F.linear(a, b)": lambda a, b: F.linear(a, b),
}

#: both gradient spellings: .grad after backward(), and what torch.autograd.grad returns
PASSES = ("backward()", "torch.autograd.grad")


def _gradients(pass_: str, loss: torch.Tensor, leaves: list[torch.Tensor]) -> list[torch.Tensor]:
    if pass_ == "backward()":
        loss.backward()
        return [leaf.grad for leaf in leaves]
    return list(torch.autograd.grad(loss, leaves))


def _device_type(device) -> str:
    return torch.device(device).type


@st.composite
def operands(draw, device, a_requires_grad=True, b_requires_grad=True):
    """(n, k) and (m, k) float32 tensors, sides 1 to 3."""
    n, m, k = (draw(st.integers(1, 3), label=side) for side in ("n", "m", "k"))
    a = draw(tensors(dtype=torch.float32, shape=(n, k), device=device, requires_grad=a_requires_grad), label="a")
    b = draw(tensors(dtype=torch.float32, shape=(m, k), device=device, requires_grad=b_requires_grad), label="b")
    return a, b


def _representable_in_bfloat16(t: torch.Tensor) -> bool:
    return torch.equal(t, t.to(LOW).to(t.dtype))


# --------------------------------------------------------------------------------------------- AMP-1


@pytest.mark.spec("AMP-1")
@given(data=st.data())
def test_backward_of_an_autocast_op_runs_in_its_forward_dtype(device, mode, data):
    source = data.draw(st.sampled_from(sorted(AUTOCAST_OPS)), label="op")
    op = AUTOCAST_OPS[source]
    a, b = data.draw(operands(device), label="operands")
    device_type = _device_type(device)

    def program(a, b):
        with torch.autocast(device_type, dtype=LOW):
            return op(a, b)

    c = mode.compile(program)(a, b)
    what = f"`{source}` inside torch.autocast({device_type!r}, dtype=torch.bfloat16) ({mode})"
    assert_equal(c.dtype, LOW, clause="AMP-1", what=f"the dtype of {what}")
    c.retain_grad()
    g = data.draw(tensors(dtype=torch.float32, shape=tuple(c.shape), device=device), label="gradient of c")
    (c.float() * g).sum().backward()
    assert_equal(c.grad.dtype, LOW, clause="AMP-1", what=f"the dtype of the gradient of {what}")
    assert_close(c.grad, g.to(LOW), clause="AMP-1", what=f"the gradient of {what}")
    # the reference: the op's backward on bfloat16 operands, run by hand (dc/da = g·b, dc/db = gᵀ·a)
    g_low = g.to(LOW)
    expected = {"a": (g_low @ b.detach().to(LOW)).float(), "b": (g_low.mT @ a.detach().to(LOW)).float()}
    for name, leaf in (("a", a), ("b", b)):
        if leaf.grad is None:
            fail("AMP-1", f"the gradient of the float32 operand {name} of {what}: expected a tensor, got None")
        if not _representable_in_bfloat16(leaf.grad):
            fail("AMP-1", f"the gradient {what} passes back to {name} should be a bfloat16 value (its backward runs in bfloat16), but it is not exactly representable in bfloat16: {leaf.grad}")
        assert_close(leaf.grad, expected[name], clause="AMP-1", what=f"the gradient of {name} through {what}: the op's backward on the bfloat16-cast operands", rtol=1.6e-2, atol=1e-2)


# --------------------------------------------------------------------------------------------- AMP-2


@pytest.mark.spec("AMP-2")
@pytest.mark.parametrize("pass_", PASSES)
@given(data=st.data())
def test_gradients_of_float32_leaves_are_float32(device, mode, pass_, data):
    source = data.draw(st.sampled_from(sorted(AUTOCAST_OPS)), label="op")
    op = AUTOCAST_OPS[source]
    a, b = data.draw(operands(device), label="operands")
    device_type = _device_type(device)

    def loss(a, b, autocast: bool):
        with torch.autocast(device_type, dtype=LOW, enabled=autocast):
            out = op(a, b)
        return out.float().square().mean()

    reference = torch.autograd.grad(loss(a, b, False), [a, b])
    grads = _gradients(pass_, mode.compile(loss)(a, b, True), [a, b])
    for name, grad, want in zip("ab", grads, reference):
        what = f"the gradient by {pass_} of the float32 leaf {name} used by `{source}` inside torch.autocast({device_type!r}, dtype=torch.bfloat16) ({mode})"
        if grad is None:
            fail("AMP-2", f"{what}: expected a tensor, got None")
        assert_equal(grad.dtype, torch.float32, clause="AMP-2", what=f"the dtype of {what}")
        assert_close(grad, want, clause="AMP-2", what=f"{what}: the gradient without autocast, to bfloat16 precision", rtol=5e-2, atol=5e-2)


@pytest.mark.spec("AMP-2")
@pytest.mark.parametrize("pass_", PASSES)
@given(data=st.data())
def test_gradients_of_float32_parameters_are_float32(device, mode, pass_, data):
    k, m = data.draw(st.integers(1, 3), label="in_features"), data.draw(st.integers(1, 3), label="out_features")
    torch.manual_seed(data.draw(st.integers(0, 2**16), label="init seed"))
    net = torch.nn.Linear(k, m).to(device)
    x = data.draw(tensors(dtype=torch.float32, shape=(data.draw(st.integers(1, 3), label="batch"), k), device=device), label="x")
    device_type = _device_type(device)
    params = list(net.parameters())
    reference = torch.autograd.grad(net(x).square().mean(), params)
    compiled = mode.module(net)

    def loss(x):
        with torch.autocast(device_type, dtype=LOW):
            out = compiled(x)
        return out.float().square().mean()

    grads = _gradients(pass_, loss(x), params)
    for (name, _), grad, want in zip(net.named_parameters(), grads, reference):
        what = f"the gradient by {pass_} of the float32 parameter {name} of nn.Linear({k}, {m}) called inside torch.autocast({device_type!r}, dtype=torch.bfloat16) ({mode})"
        if grad is None:
            fail("AMP-2", f"{what}: expected a tensor, got None")
        assert_equal(grad.dtype, torch.float32, clause="AMP-2", what=f"the dtype of {what}")
        assert_close(grad, want, clause="AMP-2", what=f"{what}: the gradient without autocast, to bfloat16 precision", rtol=5e-2, atol=5e-2)


# --------------------------------------------------------------------------------------------- AMP-3


def _no_grad_decorated(op):
    @torch.no_grad()
    def run(a, b):
        return op(a, b)

    return run


def _within(context_factory, op):
    def run(a, b):
        with context_factory():
            return op(a, b)

    return run


#: ways to run the op without grad inside the region, each a function of (a, b) made from the op
NO_GRAD_FORMS = {
    "with torch.no_grad():": lambda op: _within(torch.no_grad, op),
    "with torch.set_grad_enabled(False):": lambda op: _within(lambda: torch.set_grad_enabled(False), op),
    "@torch.no_grad() function": _no_grad_decorated,
}


@pytest.mark.spec("AMP-3")
@given(data=st.data())
def test_no_grad_inside_an_autocast_region_keeps_later_operations_recorded(device, mode, data):
    source = data.draw(st.sampled_from(sorted(AUTOCAST_OPS)), label="op")
    op = AUTOCAST_OPS[source]
    form = data.draw(st.sampled_from(sorted(NO_GRAD_FORMS)), label="no_grad form")
    x_requires_grad = data.draw(st.booleans(), label="x requires grad")
    x, w = data.draw(operands(device, a_requires_grad=x_requires_grad), label="operands (x, leaf w)")
    device_type = _device_type(device)
    without_grad = NO_GRAD_FORMS[form](op)

    def program(x, w, first_without_grad: bool):
        with torch.autocast(device_type, dtype=LOW):
            if first_without_grad:
                without_grad(x, w)
            return op(x, w)

    leaves = [x, w] if x_requires_grad else [w]
    expected = torch.autograd.grad(program(x, w, False).float().sum(), leaves)
    y = mode.compile(program)(x, w, True)
    what = f"`{source}` on the leaf w after `{form}` ran it first, inside torch.autocast({device_type!r}, dtype=torch.bfloat16) ({mode})"
    assert_requires_grad(y, True, clause="AMP-3", what=what)
    grads = torch.autograd.grad(y.float().sum(), leaves, allow_unused=True)
    for leaf, grad, want in zip(leaves, grads, expected):
        name = "x" if leaf is x else "w"
        if grad is None:
            fail("AMP-3", f"the gradient of {name} through {what}: expected a tensor, got None (the operation was not recorded for {name})")
        assert_close(grad, want, clause="AMP-3", what=f"the gradient of {name} through {what}: the one without the no_grad pass")


# --------------------------------------------------------------------------------------------- AMP-4


def _as_context_manager(autocast, device_type, op):
    def inside(a, b):
        with autocast(device_type, dtype=LOW):
            return op(a, b)

    return inside


def _as_decorator(autocast, device_type, op):
    @autocast(device_type, dtype=LOW)
    def inside(a, b):
        return op(a, b)

    return inside


#: (spelling, form): the autocast region as a context manager or a decorator, spelled torch.autocast or torch.amp.autocast
REGIONS = {
    "with torch.autocast(...):": lambda device_type, op: _as_context_manager(torch.autocast, device_type, op),
    "@torch.autocast(...)": lambda device_type, op: _as_decorator(torch.autocast, device_type, op),
    "with torch.amp.autocast(...):": lambda device_type, op: _as_context_manager(torch.amp.autocast, device_type, op),
    "@torch.amp.autocast(...)": lambda device_type, op: _as_decorator(torch.amp.autocast, device_type, op),
}


@pytest.mark.spec("AMP-4")
@pytest.mark.parametrize("region", sorted(REGIONS))
@given(data=st.data())
def test_autocast_as_context_manager_and_decorator(device, mode, region, data):
    source = data.draw(st.sampled_from(sorted(AUTOCAST_OPS)), label="op")
    op = AUTOCAST_OPS[source]
    a, b = data.draw(operands(device, b_requires_grad=False), label="operands")
    device_type = _device_type(device)
    inside = REGIONS[region](device_type, op)

    def program(a, b):
        c = inside(a, b)
        return c, op(a, b)  # the same op once the region has ended

    c, d = mode.compile(program)(a, b)
    what = f"`{source}` in `{region}` (device_type={device_type!r}, dtype=torch.bfloat16; {mode})"
    assert_equal(c.dtype, LOW, clause="AMP-4", what=f"the dtype of {what}")
    assert_equal(d.dtype, torch.float32, clause="AMP-4", what=f"the dtype of the same op after the region of {what} ended")
    assert_requires_grad(c, True, clause="AMP-4", what=what)
    (grad,) = torch.autograd.grad((c.float() + d).sum(), [a])
    ones = torch.ones(c.shape, device=device)
    expected = (ones.to(LOW) @ b.to(LOW)).float() + ones @ b  # through the bfloat16 op and through the float32 one
    assert_close(grad, expected, clause="AMP-4", what=f"the gradient of a through {what} and through the op after it", rtol=1.6e-2, atol=1e-2)


# --------------------------------------------------------------------------------------------- AMP-5


@pytest.mark.spec("AMP-5")
@given(data=st.data())
def test_nested_disabled_region_runs_ops_in_their_own_dtypes(device, mode, data):
    source = data.draw(st.sampled_from(sorted(AUTOCAST_OPS)), label="op")
    op = AUTOCAST_OPS[source]
    a, b = data.draw(operands(device, b_requires_grad=False), label="operands")  # a (n, k), b (m, k)
    device_type = _device_type(device)

    def program(a, b):
        with torch.autocast(device_type, dtype=LOW):
            c = op(a, b)  # (n, m), bfloat16
            with torch.autocast(device_type, enabled=False):
                d = op(c.float(), b.mT)  # (n, k), float32: b.mT is (k, m)
            e = op(d, b)  # (n, m), bfloat16 again
        return c, d, e

    c, d, e = mode.compile(program)(a, b)
    what = f"`{source}` inside torch.autocast({device_type!r}, dtype=torch.bfloat16)"
    assert_equal(c.dtype, LOW, clause="AMP-5", what=f"the dtype of {what}, before the nested block")
    assert_equal(d.dtype, torch.float32, clause="AMP-5", what=f"the dtype of the same op on float32 operands in a nested torch.autocast({device_type!r}, enabled=False) block ({mode})")
    assert_equal(e.dtype, LOW, clause="AMP-5", what=f"the dtype of {what}, after the nested block ended ({mode})")
    (grad,) = torch.autograd.grad(e.float().sum(), [a])
    # by hand: e = d·bᵀ in bfloat16, d = c·b in float32, c = a·bᵀ in bfloat16
    b_low = b.to(LOW)
    g_e = torch.ones(e.shape, device=device, dtype=LOW)
    g_d = (g_e @ b_low).float()
    g_c = (g_d @ b.mT).to(LOW)
    expected = (g_c @ b_low).float()
    assert_close(grad, expected, clause="AMP-5", what=f"the gradient of a through {what}, a nested float32 block and the op again ({mode})", rtol=3e-2, atol=3e-2)
